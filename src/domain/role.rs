//! What a user may do. The three roles are disjoint: an admin manages the portal, an uploader
//! sends files, an auditor only reads the audit log.

use std::fmt;

use super::FieldError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Uploader,
    Auditor,
}

impl Role {
    /// Every role, in the order forms list them.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Uploader, Role::Auditor];

    /// Accepts exactly the database spelling. No trimming or case folding: the value comes
    /// from a select box or the CLI, and the stored values must stay canonical.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == raw)
            .ok_or_else(|| FieldError::new("role", "must be one of: admin, uploader, auditor"))
    }

    /// The value stored in the database and accepted on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Uploader => "uploader",
            Role::Auditor => "auditor",
        }
    }

    /// The name shown to people.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::Uploader => "Uploader (clinician)",
            Role::Auditor => "Auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_database_spelling() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
        }
        assert_eq!(Role::Uploader.label(), "Uploader (clinician)");
    }

    #[test]
    fn refuses_anything_else() {
        for bad in ["", "Admin", " admin", "admin ", "root", "administrator"] {
            let err = Role::parse(bad).unwrap_err();
            assert_eq!(err.field, "role");
            assert!(err.message.contains("admin, uploader, auditor"), "{err}");
        }
    }
}
