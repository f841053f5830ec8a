//! "Did you mean" hints for misspelt backend names and keys.
//!
//! A dependency for one 15-line function would cost every user a longer build of the
//! proc-macro crate, so the edit distance is written here.

/// Levenshtein distance over chars, two rows of memory.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `found`, if it is close enough to be a likely typo: at most one
/// edit for short words, about one edit per three characters for longer ones.
pub(crate) fn did_you_mean<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (found.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(found, candidate), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// "`a`, `b`, `c`": the list part of an "expected one of" message.
pub(crate) fn backticked_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items
        .into_iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_insertions_deletions_substitutions() {
        assert_eq!(edit_distance("threadng", "threading"), 1);
        assert_eq!(edit_distance("", "loky"), 4);
        assert_eq!(edit_distance("loky", "loky"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggests_only_close_candidates() {
        let names = ["sequential", "threading", "loky"];
        assert_eq!(did_you_mean("threadng", names), Some("threading"));
        assert_eq!(did_you_mean("lokey", names), Some("loky"));
        assert_eq!(did_you_mean("dask", names), None);
    }

    #[test]
    fn lists_in_backticks() {
        assert_eq!(backticked_list(["a", "b"]), "`a`, `b`");
    }
}
