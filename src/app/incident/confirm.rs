//! The phrase an administrator types before an incident control runs: these controls act on
//! every user or every bucket at once, so a stray click or a replayed form must not set one
//! off.

use crate::domain::FieldError;

/// One of the controls on the incident response page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    SignOutEveryone,
    RevokeApiKeys,
    RevalidateBuckets,
}

impl Control {
    /// What the administrator types, shown on the page.
    pub fn phrase(self) -> &'static str {
        match self {
            Self::SignOutEveryone => "sign out everyone",
            Self::RevokeApiKeys => "revoke api keys",
            Self::RevalidateBuckets => "revalidate buckets",
        }
    }
}

/// Proof that the phrase of a control was typed exactly (surrounding spaces aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation(Control);

impl Confirmation {
    pub fn parse(control: Control, raw: &str) -> Result<Self, FieldError> {
        let typed = raw.trim();
        if typed.is_empty() {
            return Err(FieldError::new(
                "confirm",
                format!("Type {} to confirm.", control.phrase()),
            ));
        }
        if typed != control.phrase() {
            return Err(FieldError::new(
                "confirm",
                format!(
                    "The phrase typed does not match {}; nothing was changed.",
                    control.phrase()
                ),
            ));
        }
        Ok(Self(control))
    }

    pub fn control(self) -> Control {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_phrase_confirms() {
        let control = Control::SignOutEveryone;
        assert!(Confirmation::parse(control, "sign out everyone").is_ok());
        assert!(Confirmation::parse(control, "  sign out everyone \n").is_ok());
        for wrong in [
            "",
            "   ",
            "Sign out everyone",
            "sign out",
            "sign out  everyone",
            "revoke api keys",
        ] {
            let err = Confirmation::parse(control, wrong).unwrap_err();
            assert_eq!(err.field, "confirm", "{wrong:?}");
        }
    }

    #[test]
    fn each_control_has_its_own_phrase() {
        let controls = [
            Control::SignOutEveryone,
            Control::RevokeApiKeys,
            Control::RevalidateBuckets,
        ];
        for a in controls {
            for b in controls {
                assert_eq!(
                    Confirmation::parse(a, b.phrase()).is_ok(),
                    a == b,
                    "{a:?} {b:?}"
                );
            }
        }
    }
}
