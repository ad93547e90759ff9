//! The one email-address rule every entry point checks (ingested contractors, the API, HubSpot's values), and the
//! white space it refuses.

/// White space as the OpenAPI document's patterns mean it: `\s` of ECMA-262 regular expressions, which JSON Schema
/// uses (WhiteSpace and LineTerminator: tab, line feed, vertical tab, form feed, carriage return, U+FEFF, U+2028,
/// U+2029 and the Zs space separators). The server must agree with its own schema, so it uses this set rather than
/// Rust's `char::is_whitespace` (which adds U+0085 and lacks U+FEFF).
pub fn is_space(ch: char) -> bool {
    matches!(
        ch,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

/// A deliberately loose email check, the shape of the API's pattern `^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$`: one `@`, a
/// non-empty local part, a domain of at least two non-empty labels, and no white space (see [`is_space`]). The mail
/// server is the real judge. Callers check the text as they store it (trimmed or not) and name the field themselves.
pub fn is_email(text: &str) -> bool {
    if text.chars().any(is_space) {
        return false;
    }
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.split('.').count() >= 2
                && !domain.split('.').any(str::is_empty)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_emails_and_malformed_ones_are_not() {
        let cases = [
            ("a@b.co", true),
            ("first.last+tag@agency.gov", true),
            ("a\u{85}\u{1e}@b.co", true),
            ("", false),
            ("a@b", false),
            ("a b@c.d", false),
            (" a@b.co", false),
            ("a\u{feff}@b.co", false),
            ("a\u{3000}@b.co", false),
            ("@b.co", false),
            ("a@@b.co", false),
            ("a@b@c.co", false),
            ("a@b.", false),
            ("a@.co", false),
            ("a@b..co", false),
        ];
        for (text, expected) in cases {
            assert_eq!(is_email(text), expected, "{text:?}");
        }
    }

    #[test]
    fn white_space_is_the_ecma_262_set() {
        for ch in [
            '\t', '\n', '\u{b}', '\u{c}', '\r', ' ', '\u{a0}', '\u{2009}', '\u{feff}', '\u{3000}',
        ] {
            assert!(is_space(ch), "{ch:?}");
        }
        for ch in ['a', '\u{85}', '\u{1e}', '@'] {
            assert!(!is_space(ch), "{ch:?}");
        }
    }
}
