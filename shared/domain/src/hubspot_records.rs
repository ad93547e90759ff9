//! Records born in HubSpot: what a creation event (or, later, reconciliation) brings in, before crmsync stores it.
//! They have no automated source, so they carry only what HubSpot holds.

use chrono::{DateTime, Utc};

/// A company made in HubSpot, as it is stored locally.
#[derive(Debug, Clone, Default)]
pub struct NewCompany {
    pub hubspot_id: String,
    pub name: String,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
}

/// A contact made in HubSpot.
#[derive(Debug, Clone, Default)]
pub struct NewContact {
    pub hubspot_id: String,
    pub full_name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile_phone: Option<String>,
    pub job_title: Option<String>,
    pub lifecycle_stage: Option<String>,
    pub owner_id: Option<String>,
}

/// A deal made in HubSpot.
#[derive(Debug, Clone, Default)]
pub struct NewDeal {
    pub hubspot_id: String,
    pub deal_name: String,
    pub deal_value: Option<rust_decimal::Decimal>,
    pub expected_close_date: Option<chrono::NaiveDate>,
    pub stage: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
}
