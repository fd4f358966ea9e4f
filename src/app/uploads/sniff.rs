//! Magic-byte checks: the first bytes of an upload must be what its extension says.
//!
//! The pipeline buffers the first [`bytes_needed`] bytes (or the whole file, when it is
//! smaller), then calls [`check`] once. Only the start of the file is examined: for text and
//! CSV that is the first 64 KiB. This is a guard against mislabelled and disguised files
//! (an executable named `.pdf`, a DICOM file whose preamble is a Windows program), not a
//! format validator; the virus scanner looks at the whole file after completion.

use crate::app::buckets::UNNAMED_DICOM;

/// A file type the portal accepts, as named by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Dicom,
    Pdf,
    Png,
    Jpeg,
    Zip,
    Gzip,
    Tar,
    Nifti,
    NiftiGz,
    Text,
    Csv,
}

impl FileKind {
    /// The kind for a lowercase extension as returned by `SafeFilename::extension`
    /// (`tar.gz`, `tgz` and `gz` are all gzip streams). A name with no type
    /// ([`UNNAMED_DICOM`], see `buckets::type_of`) can only be DICOM, told by its content.
    pub fn from_extension(ext: &str) -> Option<Self> {
        Some(match ext {
            UNNAMED_DICOM | "dcm" | "dicom" => Self::Dicom,
            "pdf" => Self::Pdf,
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "zip" => Self::Zip,
            "gz" | "tgz" | "tar.gz" => Self::Gzip,
            "tar" => Self::Tar,
            "nii" => Self::Nifti,
            "nii.gz" => Self::NiftiGz,
            "txt" => Self::Text,
            "csv" => Self::Csv,
            _ => return None,
        })
    }

    /// "a PDF document", for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Dicom => "a DICOM file",
            Self::Pdf => "a PDF document",
            Self::Png => "a PNG image",
            Self::Jpeg => "a JPEG image",
            Self::Zip => "a ZIP archive",
            Self::Gzip => "a gzip archive",
            Self::Tar => "a tar archive",
            Self::Nifti => "a NIfTI-1 image",
            Self::NiftiGz => "a gzip-compressed NIfTI image",
            Self::Text => "a text file",
            Self::Csv => "a CSV file",
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why the first bytes do not fit the declared kind. The `Display` text is written for the
/// uploader (tus answers 415 with it). [`SniffError::NeedMoreBytes`] alone is not a
/// rejection: the caller passed fewer bytes than [`bytes_needed`] of a file that goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SniffError {
    #[error("the file is named as {expected} but its content is {found}")]
    Mismatch {
        expected: FileKind,
        found: &'static str,
    },
    #[error("the file is named as {expected} but its content does not start like one")]
    NotRecognised { expected: FileKind },
    #[error("the file is named as {expected} but is too short ({len} bytes) to be one")]
    TooShort { expected: FileKind, len: usize },
    #[error("the DICOM preamble holds {found}, which is not allowed")]
    ExecutablePreamble { found: &'static str },
    #[error("the file is named as {expected} but is not valid UTF-8 text")]
    InvalidUtf8 { expected: FileKind },
    #[error("the file is named as {expected} but contains a NUL byte (at byte {offset})")]
    NulByte { expected: FileKind, offset: usize },
    #[error("{needed} leading bytes are needed to check the file type")]
    NeedMoreBytes { needed: usize },
    #[error(
        "its name has no extension of an accepted type, so it is accepted only as a DICOM \
         file, and its content is not DICOM (no DICM marker after a 128-byte preamble)"
    )]
    NotDicomByContent,
    #[error(
        "its name has no extension of an accepted type, so it is accepted only as a DICOM \
         file, and it is too short ({len} bytes) to be one"
    )]
    TooShortForDicom { len: usize },
}

impl SniffError {
    /// The same verdict for a file named without a type: any rejection other than an
    /// executable preamble means it is not DICOM, and the message says so (and that it is
    /// too short to be, when that is why: an empty file is refused for what it is).
    pub fn for_unnamed(self) -> Self {
        match self {
            Self::ExecutablePreamble { .. } | Self::NeedMoreBytes { .. } => self,
            Self::TooShort { len, .. } => Self::TooShortForDicom { len },
            _ => Self::NotDicomByContent,
        }
    }

    /// False only for [`SniffError::NeedMoreBytes`], which asks for more input.
    pub fn is_rejection(&self) -> bool {
        !matches!(self, Self::NeedMoreBytes { .. })
    }
}

const TEXT_BYTES: usize = 64 * 1024;

/// How many leading bytes [`check`] wants for `kind` (fewer suffice when the file is smaller).
pub fn bytes_needed(kind: FileKind) -> usize {
    match kind {
        FileKind::Dicom => 132,
        FileKind::Pdf => 5,
        FileKind::Png => 8,
        FileKind::Jpeg => 3,
        FileKind::Zip => 4,
        FileKind::Gzip | FileKind::NiftiGz => 3,
        FileKind::Tar => 512,
        FileKind::Nifti => 348,
        FileKind::Text | FileKind::Csv => TEXT_BYTES,
    }
}

const PDF: &[u8] = b"%PDF-";
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG: &[u8] = b"\xff\xd8\xff";
const ZIP: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY: &[u8] = b"PK\x05\x06";
const GZIP: &[u8] = b"\x1f\x8b\x08";
const DICM_AT: usize = 128;
const USTAR_AT: usize = 257;
const NIFTI_AT: usize = 344;

/// Executable formats that must never hide in a DICOM preamble.
const EXECUTABLES: &[(&[u8], &str)] = &[
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an ELF executable"),
    (b"#!", "a script"),
    (b"\xfe\xed\xfa\xce", "a Mach-O executable"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O executable"),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal binary"),
];

/// What the leading bytes say about a magic number at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Match,
    Mismatch,
    /// `head` ends before the magic does, and what there is agrees with it.
    Unknown,
}

fn magic_at(head: &[u8], offset: usize, magic: &[u8]) -> Magic {
    let available = head.get(offset..).unwrap_or_default();
    let n = available.len().min(magic.len());
    if available.get(..n) != magic.get(..n) {
        Magic::Mismatch
    } else if n == magic.len() {
        Magic::Match
    } else {
        Magic::Unknown
    }
}

/// Checks that `head`, the first bytes of a file, fit `kind`. `is_complete_file` says that
/// `head` is the whole file; a complete file shorter than [`bytes_needed`] is judged on what
/// there is, an incomplete one gets [`SniffError::NeedMoreBytes`] unless the bytes already
/// disagree. Never panics, whatever the input.
pub fn check(kind: FileKind, head: &[u8], is_complete_file: bool) -> Result<(), SniffError> {
    let needed = bytes_needed(kind);
    if matches!(kind, FileKind::Text | FileKind::Csv) {
        return check_text(kind, head, is_complete_file, needed);
    }
    if kind == FileKind::Dicom
        && let Some((_, found)) = EXECUTABLES
            .iter()
            .find(|(magic, _)| magic_at(head, 0, magic) == Magic::Match)
    {
        return Err(SniffError::ExecutablePreamble { found });
    }
    let magics: &[(usize, &[u8])] = match kind {
        FileKind::Dicom => &[(DICM_AT, b"DICM")],
        FileKind::Pdf => &[(0, PDF)],
        FileKind::Png => &[(0, PNG)],
        FileKind::Jpeg => &[(0, JPEG)],
        FileKind::Zip => &[(0, ZIP), (0, ZIP_EMPTY)],
        FileKind::Gzip | FileKind::NiftiGz => &[(0, GZIP)],
        FileKind::Tar => &[(USTAR_AT, b"ustar")],
        FileKind::Nifti => &[(NIFTI_AT, b"n+1\0"), (NIFTI_AT, b"ni1\0")],
        FileKind::Text | FileKind::Csv => &[],
    };
    let states: Vec<Magic> = magics
        .iter()
        .map(|(offset, magic)| magic_at(head, *offset, magic))
        .collect();
    if states.contains(&Magic::Match) {
        return Ok(());
    }
    if states.contains(&Magic::Unknown) {
        if !is_complete_file {
            return Err(SniffError::NeedMoreBytes { needed });
        }
        if identify(head).is_none() {
            return Err(SniffError::TooShort {
                expected: kind,
                len: head.len(),
            });
        }
    }
    Err(match identify(head) {
        Some(found) => SniffError::Mismatch {
            expected: kind,
            found,
        },
        None => SniffError::NotRecognised { expected: kind },
    })
}

fn check_text(
    kind: FileKind,
    head: &[u8],
    is_complete_file: bool,
    needed: usize,
) -> Result<(), SniffError> {
    if let Some(offset) = head.iter().position(|b| *b == 0) {
        return Err(SniffError::NulByte {
            expected: kind,
            offset,
        });
    }
    if let Err(e) = std::str::from_utf8(head) {
        // `error_len() == None`: a character cut off by the end of `head`, fine when more follows.
        if is_complete_file || e.error_len().is_some() {
            return Err(SniffError::InvalidUtf8 { expected: kind });
        }
    }
    if head.len() < needed && !is_complete_file {
        return Err(SniffError::NeedMoreBytes { needed });
    }
    Ok(())
}

/// Names what the bytes are, when they are something recognisable, for messages.
fn identify(head: &[u8]) -> Option<&'static str> {
    let known: &[(usize, &[u8], &'static str)] = &[
        (0, PNG, "a PNG image"),
        (0, JPEG, "a JPEG image"),
        (0, PDF, "a PDF document"),
        (0, ZIP, "a ZIP archive"),
        (0, ZIP_EMPTY, "a ZIP archive"),
        (0, GZIP, "a gzip archive"),
        (DICM_AT, b"DICM", "a DICOM file"),
        (USTAR_AT, b"ustar", "a tar archive"),
        (NIFTI_AT, b"n+1\0", "a NIfTI-1 image"),
        (NIFTI_AT, b"ni1\0", "a NIfTI-1 image"),
    ];
    known
        .iter()
        .find(|(offset, magic, _)| magic_at(head, *offset, magic) == Magic::Match)
        .map(|(_, _, name)| *name)
        .or_else(|| {
            EXECUTABLES
                .iter()
                .find(|(magic, _)| magic_at(head, 0, magic) == Magic::Match)
                .map(|(_, name)| *name)
        })
}

#[cfg(test)]
mod tests;
