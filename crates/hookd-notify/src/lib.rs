//! Notifications to people, for flows' steps: [`email`] over SMTP.
//!
//! A send is one try: the caller (a flow's durable run) decides when to try again,
//! from [`email::SendError::is_transient`], and gives every try of one step the same
//! message id.

pub mod email;
