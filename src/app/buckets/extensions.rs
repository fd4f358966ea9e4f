//! The global allowlist of file types, and a bucket's subset of it. The upload pipeline
//! uses the same list: a file whose extension is not here is never accepted anywhere.

use crate::domain::FieldError;

/// Every file type medport accepts, lowercase, without the dot. `nii.gz` is one extension
/// (a compressed NIfTI volume), matched before `gz`.
pub const ALLOWED_EXTENSIONS: &[&str] = &[
    "dcm", "dicom", "pdf", "jpg", "jpeg", "png", "zip", "gz", "tgz", "tar", "nii", "nii.gz", "txt",
    "csv",
];

/// The allowlisted extension of a file name (case-insensitive, longest match first), or
/// `None` when its type is not allowed at all.
pub fn extension_of(filename: &str) -> Option<&'static str> {
    let lower = filename.trim().to_ascii_lowercase();
    ALLOWED_EXTENSIONS
        .iter()
        .filter(|ext| {
            lower.len() > ext.len() + 1
                && lower.ends_with(*ext)
                && lower.as_bytes()[lower.len() - ext.len() - 1] == b'.'
        })
        .max_by_key(|ext| ext.len())
        .copied()
}

/// The stored "extension" of a file taken as DICOM by its content alone.
pub const UNNAMED_DICOM: &str = "";

/// The type a file name asks for: its allowlisted extension; or, for a name with no
/// extension or only digits after its last dot (DICOM media names such as `DICOMDIR` and
/// `IM000001`, or a SOP instance UID), [`UNNAMED_DICOM`]: such a file is accepted only if
/// its content is DICOM, which the sniffer checks. Anything else is `None`.
pub fn type_of(filename: &str) -> Option<&'static str> {
    if let Some(ext) = extension_of(filename) {
        return Some(ext);
    }
    let name = filename.trim();
    let unnamed = match name.rsplit_once('.') {
        None => !name.is_empty(),
        Some((stem, last)) => {
            !stem.is_empty() && !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
        }
    };
    unnamed.then_some(UNNAMED_DICOM)
}

fn known(raw: &str) -> Option<&'static str> {
    ALLOWED_EXTENSIONS.iter().find(|e| **e == raw).copied()
}

/// The file types one bucket accepts: every allowlisted type, or a subset of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extensions(Option<Vec<&'static str>>);

impl Extensions {
    pub fn all() -> Self {
        Self(None)
    }

    /// From the form's ticked boxes. Nothing ticked means every allowlisted type; anything
    /// outside the allowlist is refused.
    pub fn parse(items: &[String]) -> Result<Self, FieldError> {
        if items.is_empty() {
            return Ok(Self::all());
        }
        let mut chosen = Vec::new();
        for item in items {
            let item = item.trim().trim_start_matches('.').to_ascii_lowercase();
            let Some(ext) = known(&item) else {
                return Err(FieldError::new(
                    "allowed_extensions",
                    "may only include types from the global allowlist",
                ));
            };
            if !chosen.contains(&ext) {
                chosen.push(ext);
            }
        }
        Ok(Self::ordered(chosen))
    }

    /// From the database column (comma-separated). Unknown entries are dropped, so a
    /// damaged value narrows what is accepted rather than widening it.
    pub fn from_db(text: Option<&str>) -> Self {
        match text {
            None => Self::all(),
            Some(text) => Self::ordered(text.split(',').filter_map(|e| known(e.trim())).collect()),
        }
    }

    fn ordered(chosen: Vec<&'static str>) -> Self {
        // Always in allowlist order, so equal sets compare and store equal.
        Self(Some(
            ALLOWED_EXTENSIONS
                .iter()
                .filter(|e| chosen.contains(e))
                .copied()
                .collect(),
        ))
    }

    pub fn to_db(&self) -> Option<String> {
        self.0.as_ref().map(|list| list.join(","))
    }

    pub fn is_all(&self) -> bool {
        self.0.is_none()
    }

    pub fn allows(&self, ext: &str) -> bool {
        if ext == UNNAMED_DICOM {
            return self.allows("dcm") || self.allows("dicom");
        }
        match &self.0 {
            None => known(ext).is_some(),
            Some(list) => list.contains(&ext),
        }
    }

    /// The accepted types, in allowlist order.
    pub fn list(&self) -> Vec<&'static str> {
        match &self.0 {
            None => ALLOWED_EXTENSIONS.to_vec(),
            Some(list) => list.clone(),
        }
    }

    /// For pages: "every allowed type" or ".dcm, .pdf".
    pub fn describe(&self) -> String {
        match &self.0 {
            None => "Every allowed type".to_string(),
            Some(list) if list.is_empty() => "None".to_string(),
            Some(list) => list
                .iter()
                .map(|e| format!(".{e}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_matched_longest_first_and_case_insensitively() {
        assert_eq!(extension_of("brain.NII.GZ"), Some("nii.gz"));
        assert_eq!(extension_of("logs.tar.gz"), Some("gz"));
        assert_eq!(extension_of("scan.dcm"), Some("dcm"));
        assert_eq!(extension_of("report.PDF"), Some("pdf"));
        assert_eq!(extension_of("run.exe"), None);
        assert_eq!(extension_of("DICOMDIR"), None);
    }

    #[test]
    fn names_without_a_type_may_only_be_dicom_by_content() {
        for unnamed in [
            "DICOMDIR",
            "IM000001",
            "1.2.840.113619.2.55.3.6046",
            "im000001",
        ] {
            assert_eq!(type_of(unnamed), Some(UNNAMED_DICOM), "{unnamed}");
        }
        for refused in ["run.exe", "autorun.inf", ".DS_Store", "Thumbs.db", ""] {
            assert_eq!(type_of(refused), None, "{refused}");
        }
        assert_eq!(type_of("scan.DCM"), Some("dcm"));
        let dicom_only = Extensions::from_db(Some("dcm"));
        assert!(dicom_only.allows(UNNAMED_DICOM));
        assert!(!Extensions::from_db(Some("pdf")).allows(UNNAMED_DICOM));
        assert!(Extensions::all().allows(UNNAMED_DICOM));
        assert_eq!(extension_of("pdf"), None);
        assert_eq!(extension_of(".pdf"), None);
        assert_eq!(extension_of("notes.txt.exe"), None);
    }

    #[test]
    fn subsets_are_parsed_stored_and_checked() {
        let none: Vec<String> = Vec::new();
        assert!(Extensions::parse(&none).unwrap().is_all());
        let chosen = Extensions::parse(&["pdf".into(), ".DCM".into(), "pdf".into()]).unwrap();
        assert_eq!(chosen.to_db().as_deref(), Some("dcm,pdf"));
        assert!(chosen.allows("pdf") && !chosen.allows("zip"));
        assert_eq!(Extensions::from_db(Some("dcm,pdf")), chosen);
        assert!(Extensions::parse(&["exe".into()]).is_err());
        assert!(Extensions::all().allows("nii.gz") && !Extensions::all().allows("exe"));
        // A damaged stored value narrows, never widens.
        let damaged = Extensions::from_db(Some("exe, sh"));
        assert!(!damaged.allows("exe") && !damaged.allows("pdf"));
    }
}
