//! A new installation has no administrator and no page to make one: the first comes from
//! the command line. Start-up and the sign-in page (for visitors on this machine) say how.

use crate::config::Settings;
use crate::infra::db::{DbConnection, DbError};

/// True until an enabled administrator exists.
pub fn needs_first_admin(conn: &mut DbConnection) -> Result<bool, DbError> {
    Ok(super::users::count_active_admins(conn)? == 0)
}

/// The exact command that creates the first administrator for this configuration.
pub fn create_admin_command(settings: &Settings) -> String {
    let config = settings
        .config_file
        .as_ref()
        .map(|path| format!(" --config {}", shell_word(&path.display().to_string())))
        .unwrap_or_default();
    format!("medport{config} user create --email admin@example.org --role admin --password-stdin")
}

/// A path as one shell word: quoted unless it is plainly safe.
fn shell_word(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@".contains(c));
    if plain && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_names_the_configuration_file_it_needs() {
        let mut settings = Settings::defaults_for("data");
        assert_eq!(
            create_admin_command(&settings),
            "medport user create --email admin@example.org --role admin --password-stdin"
        );
        settings.config_file = Some("/etc/medport/it's here.toml".into());
        assert_eq!(
            create_admin_command(&settings),
            r"medport --config '/etc/medport/it'\''s here.toml' user create --email admin@example.org --role admin --password-stdin"
        );
    }
}
