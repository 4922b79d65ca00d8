//! The fit's required properties: recovery of a known curve, shrinkage of borrowers, the
//! fallback of unseen segments, and the serde round trip.

use super::{AttemptFact, Beta, ContactModel, fit};
use crate::domain::Channel;
use chrono::{DateTime, TimeZone as _, Utc, Weekday};
use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};

const WEEKDAYS: [Weekday; 7] =
    [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];

fn window() -> (DateTime<Utc>, DateTime<Utc>) {
    (Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap(), Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap())
}

/// Peaks at 0.45 at 19:00, 0.05 at 10:00 and before.
fn curve(hour: u32) -> f64 {
    let distance = hour as f64 - 19.0;
    0.05 + 0.40 * (-(distance * distance) / 8.0).exp()
}

/// An owned attempt, borrowed as an [`AttemptFact`].
struct Owned {
    borrower: String,
    stage: &'static str,
    channel: Channel,
    product: &'static str,
    weekday: Weekday,
    hour: u32,
    contact: bool,
}

fn facts(owned: &[Owned]) -> impl Iterator<Item = AttemptFact<'_>> {
    owned.iter().map(|o| AttemptFact {
        borrower_id: &o.borrower,
        stage: o.stage,
        channel: o.channel,
        product: o.product,
        weekday: o.weekday,
        hour: o.hour,
        contact: o.contact,
    })
}

/// `count` attempts over `borrowers` borrowers at hours 8..=21, any weekday, with `p(hour)`.
fn generate(
    rng: &mut SmallRng,
    count: usize,
    borrowers: usize,
    stage: &'static str,
    p: impl Fn(u32) -> f64,
) -> Vec<Owned> {
    (0..count)
        .map(|_| {
            let hour = rng.random_range(8..=21);
            Owned {
                borrower: format!("{stage}-b{}", rng.random_range(0..borrowers)),
                stage,
                channel: Channel::Robot,
                product: "cash",
                weekday: WEEKDAYS[rng.random_range(0..7)],
                hour,
                contact: rng.random_bool(p(hour)),
            }
        })
        .collect()
}

fn model_of(owned: &[Owned]) -> ContactModel {
    let (from, to) = window();
    fit(facts(owned), from, to)
}

#[test]
fn learn_recovers_a_known_hourly_curve_within_003() {
    let mut rng = SmallRng::seed_from_u64(7);
    let owned = generate(&mut rng, 280_000, 2_000, "M1", curve);
    let model = model_of(&owned);
    let segment = model.segment("M1", Channel::Robot, "cash");
    assert!(segment.is_known());
    for weekday in WEEKDAYS {
        for hour in 8..=21 {
            // ~20,000 attempts behind each hour (2,850 behind each weekday × hour cell).
            let mean = model.posterior(segment, "nobody", weekday, hour).mean();
            let error = (mean - curve(hour)).abs();
            assert!(error < 0.03, "{weekday} {hour}:00 fitted {mean:.3}, true {:.3}", curve(hour));
        }
    }
    let best = model.posterior(segment, "nobody", Weekday::Wed, 19);
    let worst = model.posterior(segment, "nobody", Weekday::Wed, 10);
    assert!(best.mean() > worst.mean());
    assert!(best.concentration() > 2_000.0, "a well-estimated cell is tight: {best:?}");
}

#[test]
fn learn_shrinks_sparse_borrowers_toward_their_segment_and_trusts_rich_ones() {
    let mut rng = SmallRng::seed_from_u64(11);
    let mut owned = generate(&mut rng, 20_000, 1_000, "M2", |_| 0.1);
    let mut add = |borrower: &str, attempts: usize, contacts: usize| {
        for i in 0..attempts {
            owned.push(Owned {
                borrower: borrower.to_string(),
                stage: "M2",
                channel: Channel::Robot,
                product: "cash",
                weekday: WEEKDAYS[i % 7],
                hour: 8 + (i % 14) as u32,
                contact: i < contacts,
            });
        }
    };
    add("sparse", 3, 3);
    add("rich", 60, 36);
    let model = model_of(&owned);
    let segment = model.segment("M2", Channel::Robot, "cash");
    let cases: [(&str, f64); 2] = [("sparse", 1.0), ("rich", 0.6)];
    for (borrower, own_rate) in cases {
        let segment_mean = model.posterior(segment, "nobody", Weekday::Tue, 14).mean();
        let mean = model.posterior(segment, borrower, Weekday::Tue, 14).mean();
        let (to_segment, to_own) = ((mean - segment_mean).abs(), (mean - own_rate).abs());
        assert!((segment_mean - 0.1).abs() < 0.03, "segment {segment_mean}");
        match borrower {
            "sparse" => assert!(to_segment < to_own, "{borrower}: {mean} vs segment {segment_mean}"),
            _ => assert!(to_own < to_segment, "{borrower}: {mean} vs segment {segment_mean}"),
        }
        assert!(mean > segment_mean, "{borrower} answers more than the segment");
    }
}

#[test]
fn learn_falls_back_to_the_global_curve_for_an_unseen_segment() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut owned = generate(&mut rng, 30_000, 500, "M1", curve);
    owned.extend(generate(&mut rng, 30_000, 500, "M3", |hour| curve(hour) / 3.0));
    let model = model_of(&owned);
    let unseen = model.segment("M9", Channel::Robot, "cash");
    let other_product = model.segment("M1", Channel::Robot, "card");
    let other_channel = model.segment("M1", Channel::Human, "cash");
    assert!(!unseen.is_known() && !other_product.is_known() && !other_channel.is_known());
    let known = model.segment("M1", Channel::Robot, "cash");
    for (weekday, hour) in [(Weekday::Mon, 19), (Weekday::Sat, 10), (Weekday::Thu, 15)] {
        let fallback = model.posterior(unseen, "nobody", weekday, hour);
        let global =
            &model.channels[super::model::channel_index(Channel::Robot)].cells[super::model::slot(weekday, hour)];
        assert!((fallback.mean() - global.mean()).abs() < 1e-9, "the global cell's mean");
        assert!(fallback.concentration() <= global.concentration());
        assert!(fallback.concentration() < model.posterior(known, "nobody", weekday, hour).concentration());
        // Between the two segments it pools.
        let m1 = model.posterior(known, "nobody", weekday, hour).mean();
        let m3 = model.posterior(model.segment("M3", Channel::Robot, "cash"), "nobody", weekday, hour).mean();
        assert!(m3 < fallback.mean() && fallback.mean() < m1, "{m3} < {} < {m1}", fallback.mean());
        assert_eq!(model.posterior(other_product, "nobody", weekday, hour), fallback);
    }
    // A channel with no attempts at all: uniform.
    assert_eq!(model.posterior(other_channel, "nobody", Weekday::Mon, 12).mean(), 0.5);
}

#[test]
fn learn_model_survives_a_serde_round_trip() {
    let mut rng = SmallRng::seed_from_u64(5);
    let mut owned = generate(&mut rng, 5_000, 100, "M1", curve);
    owned.extend(generate(&mut rng, 1_000, 50, "M2", |_| 0.2));
    let model = model_of(&owned);
    let json = serde_json::to_string(&model).unwrap();
    let back: ContactModel = serde_json::from_str(&json).unwrap();
    // Maps serialize in hash order, so compare what they hold, not the text.
    assert!(back.index == model.index && back.borrowers.len() == model.borrowers.len(), "same segments, borrowers");
    assert_eq!(back.summaries().len(), 2);
    assert_eq!((back.trained_from, back.trained_to, back.attempts()), (model.trained_from, model.trained_to, 6_000));
    for (stage, borrower, weekday, hour) in [("M1", "M1-b3", Weekday::Fri, 19), ("M2", "nobody", Weekday::Sun, 8)] {
        let before = model.posterior(model.segment(stage, Channel::Robot, "cash"), borrower, weekday, hour);
        let after = back.posterior(back.segment(stage, Channel::Robot, "cash"), borrower, weekday, hour);
        assert!((before.alpha - after.alpha).abs() < 1e-9 && (before.beta - after.beta).abs() < 1e-9);
    }
}

#[test]
fn learn_beta_means_samples_and_hour_clamping() {
    let cases = [
        (Beta { alpha: 45.0, beta: 55.0 }, 0.45),
        (Beta { alpha: 1.0, beta: 1.0 }, 0.5),
        (Beta { alpha: 5.0, beta: 95.0 }, 0.05),
    ];
    let mut rng = SmallRng::seed_from_u64(1);
    for (beta, mean) in cases {
        assert!((beta.mean() - mean).abs() < 1e-12);
        let draws: Vec<f64> = (0..4_000).map(|_| beta.sample(&mut rng)).collect();
        assert!(draws.iter().all(|p| (0.0..=1.0).contains(p)));
        let average = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((average - mean).abs() < 0.02, "{beta:?}: {average}");
    }
    assert_eq!(Beta { alpha: -1.0, beta: 1.0 }.sample(&mut rng), Beta { alpha: -1.0, beta: 1.0 }.mean());
    let model = model_of(&generate(&mut SmallRng::seed_from_u64(2), 2_000, 10, "M1", curve));
    let segment = model.segment("M1", Channel::Robot, "cash");
    assert_eq!(model.posterior(segment, "x", Weekday::Mon, 23), model.posterior(segment, "x", Weekday::Mon, 99));
}

/// The local hour (8..=21) of the highest posterior mean for `borrower` on a Wednesday.
fn best_hour(model: &ContactModel, stage: &str, borrower: &str) -> u32 {
    let segment = model.segment(stage, Channel::Robot, "cash");
    (8..=21u32)
        .max_by(|a, b| {
            let mean = |hour| model.posterior(segment, borrower, Weekday::Wed, hour).mean();
            mean(*a).total_cmp(&mean(*b))
        })
        .unwrap()
}

#[test]
fn learn_gives_a_borrower_with_enough_history_their_own_best_hour() {
    let mut rng = SmallRng::seed_from_u64(13);
    // The segment answers best at 19:00 (0.45), 5 % at 10:00–12:00.
    let mut owned = generate(&mut rng, 40_000, 2_000, "M1", curve);
    // Two borrowers who answer around 11:00 only (10:00–12:00), called at every hour 8..=21 in
    // turn: one 3 times, one 60 times.
    for (borrower, attempts) in [("three", 3usize), ("sixty", 60)] {
        for i in 0..attempts {
            let hour = 8 + (i % 14) as u32;
            owned.push(Owned {
                borrower: borrower.to_string(),
                stage: "M1",
                channel: Channel::Robot,
                product: "cash",
                weekday: WEEKDAYS[i % 7],
                hour,
                contact: hour.abs_diff(11) <= 1,
            });
        }
    }
    let model = model_of(&owned);
    assert_eq!(best_hour(&model, "M1", "nobody"), 19, "the segment's best hour");
    assert_eq!(best_hour(&model, "M1", "three"), 19, "3 attempts: the segment's best hour");
    assert_eq!(best_hour(&model, "M1", "sixty"), 11, "60 attempts: their own");
    let segment = model.segment("M1", Channel::Robot, "cash");
    let sixty = |hour| model.posterior(segment, "sixty", Weekday::Wed, hour).mean();
    assert!(sixty(11) > 2.0 * sixty(19), "11:00 {} vs 19:00 {}", sixty(11), sixty(19));
    // An hour the borrower was never called in takes their rate factor; another channel's
    // hours are not theirs.
    let human = model.segment("M1", Channel::Human, "cash");
    assert_eq!(
        model.posterior(human, "sixty", Weekday::Wed, 11),
        model.posterior(human, "nobody", Weekday::Wed, 11).scaled(model.borrower_factor("sixty"))
    );
}

#[test]
fn learn_reads_a_model_stored_before_borrower_hours_existed() {
    let mut rng = SmallRng::seed_from_u64(17);
    let model = model_of(&generate(&mut rng, 3_000, 20, "M1", curve));
    assert!(!model.borrower_hours.is_empty());
    let mut json: serde_json::Value = serde_json::to_value(&model).unwrap();
    json.as_object_mut().unwrap().remove("borrower_hours");
    let old: ContactModel = serde_json::from_value(json).unwrap();
    assert!(old.borrower_hours.is_empty());
    let segment = old.segment("M1", Channel::Robot, "cash");
    let cell = old.posterior(segment, "nobody", Weekday::Fri, 19);
    let borrower = old.posterior(segment, "M1-b3", Weekday::Fri, 19);
    assert!((borrower.mean() - (cell.mean() * old.borrower_factor("M1-b3")).min(1.0)).abs() < 1e-9, "the rate factor");
}

#[test]
fn learn_exact_model_gives_the_rates_it_was_given() {
    let (from, to) = window();
    let mut rates = [0.01; 24];
    rates[11] = 0.6;
    rates[19] = 0.2;
    let model = ContactModel::exact(from, to, [("b".to_string(), Channel::Robot, rates)]);
    let segment = model.segment("M1", Channel::Robot, "cash");
    let mut rng = SmallRng::seed_from_u64(1);
    for (hour, rate) in [(11, 0.6), (19, 0.2), (3, 0.01)] {
        let posterior = model.posterior(segment, "b", Weekday::Sun, hour);
        assert!((posterior.mean() - rate).abs() < 1e-6, "{hour}: {posterior:?}");
        assert!((posterior.sample(&mut rng) - rate).abs() < 1e-3, "a draw is the mean");
    }
    let json = serde_json::to_string(&model).unwrap();
    let back: ContactModel = serde_json::from_str(&json).unwrap();
    assert!((back.posterior(segment, "b", Weekday::Mon, 11).mean() - 0.6).abs() < 1e-6);
}
