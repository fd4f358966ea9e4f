//! Who is looking at studies, and what of them they may see. The web layer builds one per
//! request from the signed-in user or the API key; every study query takes it.

use crate::domain::ids::UserId;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    Own(UserId),
    Everyone,
}

#[derive(Debug, Clone)]
pub struct StudyScope {
    reach: Reach,
    /// Patient attributes are opened (the owner and administrators).
    patient: bool,
    /// File contents may be fetched (the owner and administrators, as for downloads).
    files: bool,
}

impl StudyScope {
    /// An uploader: their own studies, patient attributes and files included.
    pub fn owner(user: UserId) -> Self {
        Self {
            reach: Reach::Own(user),
            patient: true,
            files: true,
        }
    }

    /// An administrator (past the TOTP step): everyone's studies, patient attributes and
    /// files included.
    pub fn admin() -> Self {
        Self {
            reach: Reach::Everyone,
            patient: true,
            files: true,
        }
    }

    /// An auditor: everyone's studies listed, never a patient attribute or a file.
    pub fn auditor() -> Self {
        Self {
            reach: Reach::Everyone,
            patient: false,
            files: false,
        }
    }

    /// The same reach without opening patient attributes (the JSON API does not return
    /// them, so it does not decrypt them).
    pub fn without_patient(mut self) -> Self {
        self.patient = false;
        self
    }

    /// `Some(user)` when only that user's studies are in scope.
    pub fn owner_id(&self) -> Option<&str> {
        match &self.reach {
            Reach::Own(user) => Some(user.as_str()),
            Reach::Everyone => None,
        }
    }

    pub fn sees_everyone(&self) -> bool {
        self.reach == Reach::Everyone
    }

    pub fn opens_patient(&self) -> bool {
        self.patient
    }

    pub fn fetches_files(&self) -> bool {
        self.files
    }
}
