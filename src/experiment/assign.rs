//! Experiment assignment: which arm a borrower is in — sticky (the same every day) and
//! deterministic (a stable hash of the experiment's name and the borrower id, weighted by the
//! arms' weights). All of a borrower's accounts share the arm, so one person never gets two
//! treatments. Pure: the planner, `explain` and the simulator's validation all call this one
//! function; nothing else may decide an arm.

/// The arm index for `borrower_id` in the experiment salted `salt` with arm `weights` (each
/// at least 1); 0 when the weights are empty or all zero.
pub fn assign(salt: &str, borrower_id: &str, weights: impl IntoIterator<Item = u32> + Clone) -> usize {
    let total: u64 = weights.clone().into_iter().map(u64::from).sum();
    if total == 0 {
        return 0;
    }
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(salt.as_bytes());
    hasher.update(&[0]);
    hasher.update(borrower_id.as_bytes());
    let mut point = hasher.digest() % total;
    for (index, weight) in weights.into_iter().enumerate() {
        let weight = u64::from(weight);
        if point < weight {
            return index;
        }
        point -= weight;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_follows_the_weights_and_is_sticky() {
        let mut counts = [0u32; 2];
        for borrower in 0..20_000 {
            counts[assign("m1-test", &format!("B{borrower}"), [80, 20])] += 1;
        }
        let share = f64::from(counts[1]) / 20_000.0;
        assert!((share - 0.2).abs() < 0.015, "{counts:?}");
        assert_eq!(assign("m1-test", "B7", [80, 20]), assign("m1-test", "B7", [80, 20]));
        let moved = (0..2_000)
            .filter(|b| assign("a", &format!("B{b}"), [50, 50]) != assign("b", &format!("B{b}"), [50, 50]))
            .count();
        assert!((800..1_200).contains(&moved), "another salt reshuffles about half: {moved}");
        assert_eq!(assign("x", "B1", [0u32; 0]), 0);
    }
}
