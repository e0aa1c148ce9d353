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
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{field}: must be at most {MAX_NAME_LEN} bytes, got {}",
            name.len()
        ));
    }
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
    }
}
