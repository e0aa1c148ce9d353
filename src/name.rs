//! Names of experiments, arms, studies and parameters.
//!
//! One rule for every name a user gives us, because names end up in Redis
//! keys, Prometheus labels, CLI tables and URLs: 1 to [`MAX_NAME_LEN`]
//! characters from `[A-Za-z0-9_.:-]`, starting with a letter or digit.

/// Long enough for `checkout-button-color.variant-b:2026-q4` style names,
/// short enough that 2,000 arm names stay well under a gRPC message limit.
pub const MAX_NAME_LEN: usize = 128;

/// Checks `name` against the naming rule; the error text names `field`.
pub fn validate(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    check_len(field, name, MAX_NAME_LEN)?;
    let first_ok = name.as_bytes()[0].is_ascii_alphanumeric();
    let all_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if !first_ok || !all_ok {
        return Err(format!(
            "{field}: must use only letters, digits, '_', '.', ':' and '-', and start with a letter or digit; got {name:?}"
        ));
    }
    Ok(())
}

/// The byte cap of a user string that is not a name (a category, a metric
/// label): the error names `field`, the cap and the length, never the value,
/// so a 100 KB string is not echoed back into a gRPC header.
pub fn check_len(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        return Err(format!(
            "{field}: must be at most {max} bytes, got {}",
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert!(validate("name", "checkout-v2.b:1_x").is_ok());
        for bad in [
            "",
            "-x",
            "a b",
            "a/b",
            "é",
            "{tag}",
            &"x".repeat(MAX_NAME_LEN + 1),
        ] {
            let e = validate("arms[3]", bad).unwrap_err();
            assert!(e.starts_with("arms[3]: "), "{e}");
        }
        assert!(validate("name", &"x".repeat(MAX_NAME_LEN)).is_ok());
        let e = validate("arms[0]", &"x".repeat(100_000)).unwrap_err();
        assert_eq!(e, "arms[0]: must be at most 128 bytes, got 100000");
    }

    #[test]
    fn check_len_counts_bytes_and_never_echoes() {
        assert!(check_len("v", "é".repeat(4).as_str(), 8).is_ok());
        let e = check_len("v", "é".repeat(5).as_str(), 8).unwrap_err();
        assert_eq!(e, "v: must be at most 8 bytes, got 10");
    }
}
