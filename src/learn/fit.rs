//! Placeholder fit.

use super::ContactModel;
use crate::domain::Channel;
use chrono::{DateTime, Utc, Weekday};

/// One attempt.
pub struct AttemptFact<'a> {
    /// Borrower.
    pub borrower_id: &'a str,
    /// Stage.
    pub stage: &'a str,
    /// Channel.
    pub channel: Channel,
    /// Product.
    pub product: &'a str,
    /// Local weekday.
    pub weekday: Weekday,
    /// Local hour.
    pub hour: u32,
    /// Right-party contact.
    pub contact: bool,
}

/// Fits.
pub fn fit<'a>(
    facts: impl IntoIterator<Item = AttemptFact<'a>>,
    trained_from: DateTime<Utc>,
    trained_to: DateTime<Utc>,
) -> ContactModel {
    let mut model = ContactModel { trained_from, trained_to, ..ContactModel::default() };
    for fact in facts {
        let next = model.cells.len() as u32;
        let index =
            *model.segments.entry((fact.stage.to_string(), fact.channel, fact.product.to_string())).or_insert(next);
        if index == next {
            model.cells.push([(0, 0); 168]);
        }
        let cell =
            &mut model.cells[index as usize][fact.weekday.num_days_from_monday() as usize * 24 + fact.hour as usize];
        cell.0 += 1;
        cell.1 += u32::from(fact.contact);
    }
    model
}
