//! Pagination of lists (experiments, studies): `page_size` names per page in
//! name order, resumed after an opaque token.
//!
//! The token is the last name of the previous page, base64url-encoded: names
//! are unique and sorted, so "everything after this name" resumes exactly,
//! even when names are created or deleted between pages (no offset drift),
//! and no server-side cursor has to be kept.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::Error;
use crate::name;

/// Names per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// At most this many names per page: 1,000 names of at most 128 bytes stay
/// far below the 4 MiB message limit (ListExperiments used to fail at 501
/// experiments under a 64 KiB client limit when it returned everything).
pub const MAX_PAGE_SIZE: usize = 1_000;

/// A validated page request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub size: usize,
    /// Resume after this name (exclusive).
    pub after: Option<String>,
}

/// One page of names and the token of the next one (empty on the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub names: Vec<String>,
    pub next_page_token: String,
}

impl PageRequest {
    /// Check `page_size` (0 = default) and decode `page_token` (empty = first page).
    pub fn new(page_size: i32, page_token: &str) -> Result<PageRequest, Error> {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                return Err(Error::invalid(format!(
                    "page_size: must be 0 (default {DEFAULT_PAGE_SIZE}) or positive, got {n}"
                )));
            }
            n if n as usize > MAX_PAGE_SIZE => {
                return Err(Error::invalid(format!(
                    "page_size: must be at most {MAX_PAGE_SIZE}, got {n}"
                )));
            }
            n => n as usize,
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || {
                Error::invalid("page_token: not a next_page_token returned by a previous list call")
            };
            let bytes = URL_SAFE_NO_PAD.decode(page_token).map_err(|_| bad())?;
            let last = String::from_utf8(bytes).map_err(|_| bad())?;
            name::validate("page_token", &last).map_err(|_| bad())?;
            Some(last)
        };
        Ok(PageRequest { size, after })
    }

    /// The page of `names` (sorted, unique) this request asks for.
    pub fn apply(&self, mut names: Vec<String>) -> Page {
        names.sort_unstable();
        let start = match &self.after {
            Some(after) => names.partition_point(|n| n <= after),
            None => 0,
        };
        let end = (start + self.size).min(names.len());
        let next_page_token = if end < names.len() && end > start {
            URL_SAFE_NO_PAD.encode(names[end - 1].as_bytes())
        } else {
            String::new()
        };
        names.truncate(end);
        names.drain(..start);
        Page {
            names,
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_name_once_in_order() {
        let all: Vec<String> = (0..2_345).map(|i| format!("e{i:05}")).collect();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let p = PageRequest::new(1000, &token).unwrap().apply(all.clone());
            assert!(p.names.len() <= 1000);
            seen.extend(p.names);
            if p.next_page_token.is_empty() {
                break;
            }
            token = p.next_page_token;
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn a_deleted_name_does_not_shift_the_next_page() {
        let all: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let p1 = PageRequest::new(3, "").unwrap().apply(all.clone());
        assert_eq!(p1.names, ["n0", "n1", "n2"]);
        let fewer: Vec<String> = all.iter().filter(|n| *n != "n1").cloned().collect();
        let p2 = PageRequest::new(3, &p1.next_page_token)
            .unwrap()
            .apply(fewer);
        assert_eq!(p2.names, ["n3", "n4", "n5"]);
    }

    #[test]
    fn bad_sizes_and_tokens_name_the_field() {
        assert_eq!(PageRequest::new(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert!(PageRequest::new(1000, "").is_ok());
        let e = PageRequest::new(1001, "").unwrap_err();
        assert!(e.message.starts_with("page_size:"), "{e}");
        let e = PageRequest::new(-1, "").unwrap_err();
        assert!(e.message.starts_with("page_size:"), "{e}");
        let e = PageRequest::new(10, "%%%").unwrap_err();
        assert!(e.message.starts_with("page_token:"), "{e}");
        // An empty list has no next page.
        let p = PageRequest::new(10, "").unwrap().apply(vec![]);
        assert!(p.names.is_empty() && p.next_page_token.is_empty());
    }
}
