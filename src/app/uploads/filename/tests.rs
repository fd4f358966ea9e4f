use proptest::prelude::*;
use unicode_normalization::is_nfc;

use super::*;
use crate::app::buckets::ALLOWED_EXTENSIONS;

fn parse(raw: &str) -> String {
    SafeFilename::parse(raw).unwrap().into_string()
}

fn allowed(raw: &str) -> bool {
    SafeFilename::parse(raw)
        .unwrap()
        .extension_allowed(ALLOWED_EXTENSIONS)
}

#[test]
fn plain_names_are_kept() {
    assert_eq!(parse("CT head 2024-01-02.dcm"), "CT head 2024-01-02.dcm");
    assert_eq!(
        parse("Müller, Jürgen (MRT).pdf"),
        "Müller, Jürgen (MRT).pdf"
    );
}

#[test]
fn only_the_last_path_component_is_kept() {
    assert_eq!(parse("a/../evil.exe"), "evil.exe");
    assert_eq!(parse("/etc/passwd"), "passwd");
    assert_eq!(parse(r"C:\Users\dr\scan.dcm"), "scan.dcm");
    assert_eq!(parse(r"..\..\x/y\z.pdf"), "z.pdf");
}

#[test]
fn executables_are_refused_by_the_allowlist() {
    assert!(!allowed("evil.exe"));
    assert!(!allowed("evil.pdf.exe"));
    assert!(!allowed("a/../evil.exe"));
    assert!(
        !allowed("evil.exe."),
        "trailing dots must not hide the extension"
    );
    assert!(allowed("scan.dcm"));
}

#[test]
fn bidi_overrides_and_invisible_characters_are_removed() {
    let name = SafeFilename::parse("evil\u{202E}fdp.exe").unwrap();
    assert_eq!(name.as_str(), "evilfdp.exe");
    assert_eq!(name.extension().as_deref(), Some("exe"));
    assert!(!name.extension_allowed(ALLOWED_EXTENSIONS));

    let hidden = "a\u{200B}b\u{200C}c\u{200D}d\u{200E}e\u{200F}f\u{2066}g\u{2069}h\u{FEFF}i\u{061C}j\u{E0041}.txt";
    assert_eq!(parse(hidden), "abcdefghij.txt");
    assert_eq!(parse("x\u{202A}\u{202B}\u{202C}\u{202D}.pdf"), "x.pdf");
}

#[test]
fn default_ignorable_characters_that_render_as_nothing_are_removed() {
    // Hangul fillers, the combining grapheme joiner, variation selectors (plain and
    // supplementary), Mongolian selectors: each shows as nothing, so "scan.pdf" with one
    // of them inside would look the same as "scan.pdf".
    for hidden in [
        '\u{3164}',
        '\u{115F}',
        '\u{1160}',
        '\u{FFA0}',
        '\u{034F}',
        '\u{FE00}',
        '\u{FE0F}',
        '\u{E0100}',
        '\u{180B}',
        '\u{17B4}',
    ] {
        assert_eq!(
            parse(&format!("sc{hidden}an.pdf")),
            "scan.pdf",
            "U+{:04X}",
            hidden as u32
        );
    }
    // A name of nothing but fillers is no name.
    assert!(SafeFilename::parse("\u{3164}\u{115F}").is_err());
}

#[test]
fn control_characters_are_removed() {
    // The NUL trick: whatever the name claims, the content sniffer checks the bytes.
    assert_eq!(parse("report.exe\0.pdf"), "report.exe.pdf");
    assert_eq!(parse("line\r\nbreak\t.txt"), "linebreak.txt");
    assert_eq!(parse("bell\u{7}\u{1b}[31m.csv"), "bell[31m.csv");
    assert_eq!(parse("c1\u{85}\u{9b}.csv"), "c1.csv");
}

#[test]
fn markup_is_kept_as_text() {
    assert_eq!(
        parse("<script>alert(1)\u{7}<b>&amp;.pdf"),
        "<script>alert(1)<b>&amp;.pdf"
    );
    // A closing tag has a slash, so only what follows it is the name.
    assert_eq!(parse("<script>x</script>.pdf"), "script>.pdf");
}

#[test]
fn names_are_nfc_normalised() {
    assert_eq!(
        parse("Rö\u{0308}ntgen.pdf"),
        "Rö\u{0308}ntgen.pdf".nfc().collect::<String>()
    );
    assert_eq!(parse("e\u{0301}.pdf"), "\u{e9}.pdf");
    // Removing an invisible character first lets the pair compose.
    assert_eq!(parse("e\u{200B}\u{0301}.pdf"), "\u{e9}.pdf");
}

#[test]
fn whitespace_and_trailing_dots_are_trimmed() {
    assert_eq!(parse("  report.pdf  "), "report.pdf");
    assert_eq!(parse("report.pdf. . ."), "report.pdf");
    assert_eq!(parse("dir/ scan.dcm "), "scan.dcm");
    assert_eq!(parse(".hidden.txt"), ".hidden.txt");
}

#[test]
fn empty_and_dot_names_are_refused() {
    for raw in [
        "",
        "   ",
        ".",
        "..",
        "...",
        "a/..",
        "a/.",
        "a/",
        r"a\",
        "\u{202E}",
        "\u{0}\u{200B}",
        " . ",
    ] {
        let err = SafeFilename::parse(raw).unwrap_err();
        assert_eq!(err.field, "filename", "{raw:?}");
    }
}

#[test]
fn long_names_are_shortened_keeping_the_extension() {
    let long = format!("{}.dcm", "a".repeat(300));
    let name = parse(&long);
    assert_eq!(name.len(), MAX_BYTES);
    assert!(name.ends_with("aaa.dcm"));

    let multibyte = format!("{}.nii.gz", "é".repeat(200));
    let name = parse(&multibyte);
    assert!(name.len() <= MAX_BYTES && name.len() > MAX_BYTES - 2);
    assert!(name.ends_with("é.nii.gz"));

    let exact = format!("{}.pdf", "b".repeat(MAX_BYTES - 4));
    assert_eq!(parse(&exact), exact);

    let no_extension = "c".repeat(400);
    assert_eq!(parse(&no_extension), "c".repeat(MAX_BYTES));
}

#[test]
fn a_name_that_is_all_extension_is_refused_when_too_long() {
    let huge_extension = format!("a.{}", "x".repeat(300));
    assert!(SafeFilename::parse(&huge_extension).is_err());
}

#[test]
fn extensions_are_lowercase_with_double_extensions() {
    let ext = |raw: &str| SafeFilename::parse(raw).unwrap().extension();
    assert_eq!(ext("Brain.NII.GZ").as_deref(), Some("nii.gz"));
    assert_eq!(ext("logs.tar.gz").as_deref(), Some("tar.gz"));
    assert_eq!(ext("logs.TGZ").as_deref(), Some("tgz"));
    assert_eq!(ext("x.Dcm").as_deref(), Some("dcm"));
    assert_eq!(ext("archive.gz").as_deref(), Some("gz"));
    assert_eq!(ext(".nii.gz").as_deref(), Some("gz"));
    assert_eq!(ext("README"), None);
    assert_eq!(ext(".bashrc"), None);
}

#[test]
fn allowlist_matching() {
    assert!(allowed("logs.tar.gz"), "tar.gz passes through gz");
    assert!(allowed("brain.nii.gz"));
    assert!(allowed("x.TGZ"));
    assert!(!allowed("README"));
    assert!(!allowed(".pdf"));

    let name = SafeFilename::parse("brain.nii.gz").unwrap();
    assert!(name.extension_allowed(&["NII.GZ"]));
    assert!(name.extension_allowed(&["gz"]));
    assert!(!name.extension_allowed(&["nii"]));
    assert!(!name.extension_allowed(&[]));
    let pdf = SafeFilename::parse("x.PDF").unwrap();
    assert!(pdf.extension_allowed(&["pdf"]));
    assert!(!pdf.extension_allowed(&["dcm"]));
}

#[test]
fn content_disposition_for_ascii_names() {
    let name = SafeFilename::parse("report-1.pdf").unwrap();
    assert_eq!(
        content_disposition(&name),
        "attachment; filename=\"report-1.pdf\"; filename*=UTF-8''report-1.pdf"
    );
}

#[test]
fn content_disposition_escapes_quotes_and_non_ascii() {
    let name = SafeFilename::parse("Müller \"x\";%20<b>.pdf").unwrap();
    assert_eq!(
        content_disposition(&name),
        "attachment; filename=\"M_ller _x___20_b_.pdf\"; \
         filename*=UTF-8''M%C3%BCller%20%22x%22%3B%2520%3Cb%3E.pdf"
    );
}

fn decode_percent(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Raw names rich in the characters the normaliser cares about.
fn tricky_name() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        2 => Just('.'),
        1 => Just('/'),
        1 => Just('\\'),
        1 => Just(' '),
        1 => Just('\u{202E}'),
        1 => Just('\u{200B}'),
        1 => Just('\u{0}'),
        1 => Just('\u{0301}'),
        1 => Just('é'),
        1 => Just('\u{1F600}'),
        2 => any::<char>(),
    ];
    prop::collection::vec(c, 0..300).prop_map(|v| v.into_iter().collect())
}

fn check_invariants(raw: &str) -> Result<(), TestCaseError> {
    let Ok(name) = SafeFilename::parse(raw) else {
        return Ok(());
    };
    let s = name.as_str();
    prop_assert!(!s.is_empty() && s.len() <= MAX_BYTES, "{s:?}");
    prop_assert!(s != "." && s != "..");
    prop_assert!(!s.contains(['/', '\\']));
    prop_assert!(!s.chars().any(is_hidden));
    prop_assert!(!s.starts_with(char::is_whitespace));
    prop_assert!(!s.ends_with(|c: char| c == '.' || c.is_whitespace()));
    prop_assert!(is_nfc(s));
    prop_assert_eq!(SafeFilename::parse(s).ok(), Some(name.clone()));
    if let Some(ext) = name.extension() {
        let dotted = format!(".{ext}");
        prop_assert!(s.to_lowercase().ends_with(&dotted), "{:?} {:?}", s, ext);
    }
    let header = content_disposition(&name);
    prop_assert!(
        header.bytes().all(|b| (0x20..0x7f).contains(&b)),
        "{header:?}"
    );
    let encoded = header.rsplit("UTF-8''").next().unwrap();
    prop_assert_eq!(decode_percent(encoded), s.as_bytes().to_vec());
    Ok(())
}

proptest! {
    #[test]
    fn parse_never_panics_and_keeps_its_invariants(raw in any::<String>()) {
        check_invariants(&raw)?;
    }

    #[test]
    fn parse_keeps_its_invariants_on_tricky_names(raw in tricky_name()) {
        check_invariants(&raw)?;
    }
}
