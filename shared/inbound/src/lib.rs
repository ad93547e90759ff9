//! The inbound path: the webhook inbox pass that brings HubSpot's changes into the local CRM by field ownership,
//! and the re-apply pass for events that had to wait. The HTTP endpoint that fills the inbox lives in crmsync-http;
//! the outbound drain and the SQS retry path call [`apply_pending_inbox`] and [`Applier::apply_retried`].

mod apply;

pub use apply::{Applier, ApplyReport, DEFAULT_PASS_LIMIT, apply_pending_inbox};
