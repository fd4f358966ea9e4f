//! The audit log as CSV: RFC 4180 (CRLF line ends, quoted fields where needed, `""` for a
//! quote) and safe to open in a spreadsheet: a cell that starts with `=`, `+`, `-`, `@`, tab
//! or carriage return gets a leading `'`, so it is read as text rather than a formula.

use crate::app::audit::AuditRow;

pub const HEADER: [&str; 13] = [
    "id",
    "occurred_at_utc",
    "actor_user_id",
    "actor",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "ip",
    "request_id",
    "details",
    "prev_hash",
    "hash",
];

/// Appends one cell (without separator).
pub fn push_cell(out: &mut String, value: &str) {
    let formula_like = value
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    // Neutralised cells are always quoted, so no reader trims a leading tab or CR away.
    let needs_quotes = formula_like || value.contains([',', '"', '\r', '\n']);
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    if formula_like {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

/// Appends one record with its CRLF.
pub fn push_record<'a>(out: &mut String, cells: impl IntoIterator<Item = &'a str>) {
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_cell(out, cell);
    }
    out.push_str("\r\n");
}

pub fn header() -> String {
    let mut out = String::new();
    push_record(&mut out, HEADER);
    out
}

pub fn push_row(out: &mut String, row: &AuditRow) {
    let id = row.id.to_string();
    let at = row.occurred_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    push_record(
        out,
        [
            id.as_str(),
            at.as_str(),
            row.actor_user_id.as_deref().unwrap_or(""),
            &row.actor_label,
            &row.action,
            &row.outcome,
            row.target_type.as_deref().unwrap_or(""),
            row.target_id.as_deref().unwrap_or(""),
            row.ip.as_deref().unwrap_or(""),
            row.request_id.as_deref().unwrap_or(""),
            &row.details,
            &row.prev_hash,
            &row.hash,
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(v: &str) -> String {
        let mut s = String::new();
        push_cell(&mut s, v);
        s
    }

    #[test]
    fn plain_values_stay_bare() {
        assert_eq!(cell("login"), "login");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a@b.org"), "a@b.org");
    }

    #[test]
    fn rfc4180_quoting() {
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
        assert_eq!(cell("cr\rhere"), "\"cr\rhere\"");
        let mut rec = String::new();
        push_record(&mut rec, ["1", "x,y", ""]);
        assert_eq!(rec, "1,\"x,y\",\r\n");
    }

    #[test]
    fn formula_starts_are_neutralised() {
        assert_eq!(
            cell("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(cell("+1"), "\"'+1\"");
        assert_eq!(cell("-1"), "\"'-1\"");
        assert_eq!(cell("@SUM(1)"), "\"'@SUM(1)\"");
        assert_eq!(cell("\tx"), "\"'\tx\"");
        assert_eq!(cell("\rx"), "\"'\rx\"");
        // Only the first character counts.
        assert_eq!(cell("a=b"), "a=b");
    }
}
