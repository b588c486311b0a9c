//! Secrets out of every output: the one function that hides a password in a
//! service URL before it is printed, logged or written to a report.
//!
//! A workshop's screen is shared, its reports are pasted into chat, and
//! `DATABASE_URL` often carries a password. So every URL dualwrite shows —
//! in the JSON's `where` and `services`, in an error for a URL that does not
//! parse, in `doctor`, in the `reproduce:` line — goes through
//! [`redact_url`] first: `postgres://postgres:***@db:5432/app`.

/// The mask that replaces a secret.
pub const MASK: &str = "***";

/// Query parameters that carry a password in the URLs dualwrite takes
/// (libpq's `password`, the redis crate's `pass` and `password`).
const SECRET_PARAMS: [&str; 5] = ["password", "pass", "passwd", "pwd", "sslpassword"];

/// `text` with the password of a URL replaced by `***`, whether or not the
/// URL parses (a URL that does not parse is exactly the one an error message
/// quotes). Text without a password comes back unchanged.
///
/// | input                                   | output |
/// |-----------------------------------------|--------|
/// | `postgres://u:secret@h:5432/db`         | `postgres://u:***@h:5432/db` |
/// | `redis://:secret@h:6379/0`              | `redis://:***@h:6379/0` |
/// | `postgres://h/db?password=secret&x=1`   | `postgres://h/db?password=***&x=1` |
/// | `postgres://u:se/cr@t@h:bad/db` (does not parse) | `postgres://u:***@h:bad/db` |
/// | `postgres://u@h/db`                     | unchanged |
pub fn redact_url(text: &str) -> String {
    let text = redact_userinfo(text);
    redact_params(&text)
}

/// True when [`redact_url`] would change `text`.
pub fn has_secret(text: &str) -> bool {
    redact_url(text) != text
}

/// The password in `scheme://user:password@host`, masked. Found by text, not
/// by a URL parser, so that it works on URLs that do not parse; the `@` that
/// ends the user information is the last one before the host, because a
/// password may itself hold `@`, `/` or `:`.
fn redact_userinfo(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else { return text.to_owned() };
    let start = scheme_end + 3;
    let rest = &text[start..];
    // The authority ends at the first '/', '?' or '#' after the last '@';
    // everything before that '@' is user information.
    let Some(at) = rest.rfind('@') else { return text.to_owned() };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else { return text.to_owned() };
    if userinfo[colon + 1..].is_empty() {
        // `user:@host`: an empty password, nothing to hide.
        return text.to_owned();
    }
    format!("{}{}:{MASK}{}", &text[..start], &userinfo[..colon], &rest[at..])
}

/// `password=...` (and its spellings) in a query string or a libpq
/// key/value string, masked. Case-insensitive on the key.
fn redact_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((key_start, value_start)) = next_secret_param(rest) {
        let value_len = rest[value_start..].find(['&', ' ', '#']).unwrap_or(rest.len() - value_start);
        out.push_str(&rest[..value_start]);
        if value_len > 0 {
            out.push_str(MASK);
        }
        rest = &rest[value_start + value_len..];
        debug_assert!(key_start < value_start);
    }
    out.push_str(rest);
    out
}

/// The next `key=` whose key is a secret, starting a parameter (after `?`,
/// `&`, a space or at the start): its key's and its value's offsets.
fn next_secret_param(text: &str) -> Option<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let mut best: Option<(usize, usize)> = None;
    for key in SECRET_PARAMS {
        let pattern = format!("{key}=");
        let mut from = 0;
        while let Some(found) = lower[from..].find(&pattern) {
            let at = from + found;
            let starts_param = at == 0 || matches!(lower.as_bytes()[at - 1], b'?' | b'&' | b' ');
            if starts_param {
                if best.is_none_or(|(b, _)| at < b) {
                    best = Some((at, at + pattern.len()));
                }
                break;
            }
            from = at + 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_user_information_are_masked() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(
            redact_url("postgresql://postgres:pw@127.0.0.1/postgres"),
            "postgresql://postgres:***@127.0.0.1/postgres"
        );
        assert_eq!(redact_url("redis://:secret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact_url("rediss://default:s3cr3t@cache.example:6380"), "rediss://default:***@cache.example:6380");
    }

    #[test]
    fn urls_that_do_not_parse_are_masked_too() {
        assert_eq!(redact_url("postgres://u:se/cr@t@h:bad/db"), "postgres://u:***@h:bad/db");
        assert_eq!(redact_url("postgres://u:p w@[::1"), "postgres://u:***@[::1");
        assert_eq!(redact_url("mysql://root:hunter2@db"), "mysql://root:***@db");
    }

    #[test]
    fn password_parameters_are_masked() {
        assert_eq!(redact_url("postgres://h/db?password=secret&x=1"), "postgres://h/db?password=***&x=1");
        assert_eq!(
            redact_url("postgres://h/db?sslmode=disable&PASSWORD=secret"),
            "postgres://h/db?sslmode=disable&PASSWORD=***"
        );
        assert_eq!(redact_url("redis+unix:///tmp/r.sock?db=1&pass=secret"), "redis+unix:///tmp/r.sock?db=1&pass=***");
        assert_eq!(redact_url("host=db user=u password=secret dbname=x"), "host=db user=u password=*** dbname=x");
        // A key that merely ends in "pass" is not a password.
        assert_eq!(redact_url("postgres://h/db?bypass=1"), "postgres://h/db?bypass=1");
    }

    #[test]
    fn text_without_a_password_is_unchanged() {
        for text in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "redis://127.0.0.1:6379",
            "postgres://u:@h/db",
            "banana",
            "",
            "127.0.0.1:9092",
        ] {
            assert_eq!(redact_url(text), text);
            assert!(!has_secret(text));
        }
        assert!(has_secret("redis://:x@h"));
    }
}
