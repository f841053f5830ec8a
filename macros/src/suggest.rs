//! "Did you mean" hints for misspelt backend names and keys.
//!
//! The distance is `strsim`'s Levenshtein distance; the runtime gives the same hints for
//! names it meets at run time, with the same rule (`parjob`'s `registry`).

/// The candidate closest to `found`, if it is close enough to be a likely typo: at most one
/// edit for short words, about one edit per three characters for longer ones, or any number
/// of letters cut from the end (`thread` for `threading`).
pub(crate) fn did_you_mean<'a>(
    found: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (found.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| (strsim::levenshtein(found, candidate), candidate))
        .filter(|&(distance, candidate)| distance <= limit || is_cut_short(found, candidate))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Whether `found` is the start of `candidate`, three letters or more.
fn is_cut_short(found: &str, candidate: &str) -> bool {
    found.chars().count() >= 3 && candidate.starts_with(found)
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
    fn suggests_only_close_candidates() {
        let names = ["sequential", "threading", "loky"];
        assert_eq!(did_you_mean("threadng", names), Some("threading"));
        assert_eq!(did_you_mean("lokey", names), Some("loky"));
        assert_eq!(did_you_mean("dask", names), None);
        assert_eq!(did_you_mean("thread", names), Some("threading"));
        assert_eq!(did_you_mean("lo", names), None);
    }

    #[test]
    fn lists_in_backticks() {
        assert_eq!(backticked_list(["a", "b"]), "`a`, `b`");
    }
}
