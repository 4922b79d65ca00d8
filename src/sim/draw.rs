//! Counter-based randomness for the simulated world: every draw is a pure function of the seed
//! and the event's key (who, what kind, which local day and hour, which attempt), so two runs of
//! different strategies over the same book see the same draw for the same event. Owns the
//! hashing of keys into generators; must not keep a shared sequential generator, read a clock or
//! do I/O.

use rand::SeedableRng;
use rand::rngs::SmallRng;
use xxhash_rust::xxh3::Xxh3;

/// What a draw decides: part of its key, so draws for different decisions never coincide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// A borrower's hidden traits (drawn once, at `World::new`).
    BorrowerTraits,
    /// An account's hidden traits (drawn once, at `World::new`).
    AccountTraits,
    /// Whether a call is answered.
    Answer,
    /// How an unanswered call ends (busy, voicemail, no answer).
    Unanswered,
    /// Whether the person who answered is the borrower.
    RightParty,
    /// What the borrower says (promise, refusal, dispute, ...).
    Reaction,
    /// The promise's amount and due date.
    PromiseTerms,
    /// Whether the promise will be kept.
    PromiseKept,
    /// When the borrower asks to be called back.
    Callback,
    /// An agent's handling time.
    Handling,
    /// Whether a message is delivered.
    Delivery,
    /// Whether the account pays on its own that day.
    SelfCure,
    /// Which risk events the lender's monitoring raises on the account that day.
    RiskEvent,
    /// What the team finds when it works a reaction's case, and how long it takes.
    Disposition,
    /// Whether the borrower calls the lender in that hour, and what they want.
    Inbound,
}

/// The key of one event: the world's seed, the account or borrower id, the kind of decision, the
/// local day (days since 1970-01-01 in the borrower's zone), the local hour and the attempt's
/// index within that hour (0 for the first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key<'a> {
    pub seed: u64,
    pub id: &'a str,
    pub kind: Kind,
    pub channel: u8,
    pub day: i64,
    pub hour: u32,
    pub index: u32,
}

impl Key<'_> {
    /// A generator seeded from the key alone.
    pub fn rng(&self) -> SmallRng {
        let mut hasher = Xxh3::new();
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(&(self.id.len() as u64).to_le_bytes());
        hasher.update(self.id.as_bytes());
        hasher.update(&[self.kind as u8, self.channel]);
        hasher.update(&self.day.to_le_bytes());
        hasher.update(&self.hour.to_le_bytes());
        hasher.update(&self.index.to_le_bytes());
        SmallRng::seed_from_u64(hasher.digest())
    }

    /// One uniform draw in `[0, 1)` for the key.
    pub fn uniform(&self) -> f64 {
        use rand::Rng;
        self.rng().random()
    }

    /// The same key for another decision.
    pub fn with(&self, kind: Kind) -> Self {
        Key { kind, ..*self }
    }
}

/// A key for a trait drawn once per id.
pub(crate) fn once(seed: u64, id: &str, kind: Kind) -> Key<'_> {
    Key { seed, id, kind, channel: 0, day: 0, hour: 0, index: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_draws_the_same_every_time_and_each_part_changes_it() {
        let base = Key { seed: 7, id: "A1", kind: Kind::Answer, channel: 2, day: 20_000, hour: 19, index: 0 };
        assert_eq!(base.uniform(), base.uniform());
        let variants = [
            Key { seed: 8, ..base },
            Key { id: "A2", ..base },
            base.with(Kind::RightParty),
            Key { channel: 3, ..base },
            Key { day: 20_001, ..base },
            Key { hour: 20, ..base },
            Key { index: 1, ..base },
        ];
        for variant in variants {
            assert_ne!(variant.uniform(), base.uniform(), "{variant:?}");
        }
    }
}
