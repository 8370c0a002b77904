//! Checks on text people type: names and titles are shown on one line everywhere, so no
//! control characters (and PostgreSQL refuses NUL in `TEXT` outright, which would be a 500).

/// A display name or a title: 1 to `max` characters as sent (the limit the OpenAPI document
/// states), not blank, no control characters; stored trimmed.
pub fn line(raw: &str, max: usize) -> Option<String> {
    let ok = (1..=max).contains(&raw.chars().count())
        && !raw.trim().is_empty()
        && !raw.chars().any(char::is_control);
    ok.then(|| raw.trim().to_owned())
}

/// A message body of 1 to `max` characters as sent, not blank: newlines, carriage returns
/// and tabs are fine, NUL and the other control characters are not.
pub fn body(raw: &str, max: usize) -> Option<String> {
    let ok = (1..=max).contains(&raw.chars().count())
        && !raw.trim().is_empty()
        && !raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r');
    ok.then(|| raw.trim().to_owned())
}

/// The `pattern` the OpenAPI document gives a name or a title: what [`line`] accepts, in
/// the regex dialect both JSON Schema and Python's `re` (schemathesis) read.
pub const LINE_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// The `pattern` of a message body: what [`body`] accepts.
pub const BODY_PATTERN: &str = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_printable_line() {
        assert_eq!(line("  ann  ", 64).as_deref(), Some("ann"));
        assert_eq!(
            line(&format!(" {}", "a".repeat(64)), 64),
            None,
            "65 as sent"
        );
        assert_eq!(line("a\0b", 64), None);
        assert_eq!(line("a\nb", 64), None);
        assert_eq!(line("\u{7f}", 64), None);
        assert_eq!(line("   ", 64), None);
        assert_eq!(line(&"é".repeat(64), 64).as_deref(), Some(&*"é".repeat(64)));
        assert_eq!(line(&"é".repeat(65), 64), None);
    }

    #[test]
    fn bodies_keep_newlines_but_no_nul() {
        assert_eq!(
            body("line one\nline two\ttabbed\n", 100).as_deref(),
            Some("line one\nline two\ttabbed")
        );
        assert_eq!(body("nul\0inside", 100), None);
        assert_eq!(body("bell\u{7}", 100), None);
        assert_eq!(body(" \n ", 100), None);
        assert_eq!(body("abc", 2), None);
    }
}
