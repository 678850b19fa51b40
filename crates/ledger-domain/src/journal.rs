//! From a stored event to its postings, whatever its aggregate: the input of the journal
//! projection and of the trial balance. Events that move no money have none.

use crate::event::{decode, DecodeError};
use crate::postings::Posting;

/// The postings of the event `(event_type, version, data)` stored in `stream`.
pub fn postings_of(stream: &str, event_type: &str, version: u32, data: &str) -> Result<Vec<Posting>, DecodeError> {
    let family = stream.split_once('-').map_or(stream, |(f, _)| f);
    let _ = (event_type, version, data, decode::<crate::partner::PartnerEvent>);
    Ok(match family {
        // Money families are added here as their aggregates land.
        _ => vec![],
    })
}
