//! HubSpot owners (the users records are assigned to, `hubspot_owner_id`), as crmsync caches them, and the name the
//! API and dashboard show for one.

use serde::Serialize;

/// A HubSpot owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    /// HubSpot's owner id (the value of `hubspot_owner_id`).
    pub id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// First and last name, else the email, else `Owner <id>`.
    pub name: String,
    /// HubSpot no longer lists the owner as active (deactivated user): kept so old records keep a name, not offered
    /// as a choice.
    pub archived: bool,
}

/// The name shown for an owner: first and last name, else the email, else `Owner <id>`.
pub fn owner_name(id: &str, first: Option<&str>, last: Option<&str>, email: Option<&str>) -> String {
    let name = [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if !name.is_empty() {
        return name;
    }
    match email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(email) => email.to_owned(),
        None => format!("Owner {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fall_back_to_email_then_id() {
        assert_eq!(
            owner_name("1", Some("Ada"), Some("Lovelace"), Some("a@x.io")),
            "Ada Lovelace"
        );
        assert_eq!(owner_name("1", Some(" "), Some("Lovelace"), None), "Lovelace");
        assert_eq!(owner_name("1", None, None, Some("a@x.io")), "a@x.io");
        assert_eq!(owner_name("7", None, Some(""), Some(" ")), "Owner 7");
    }
}
