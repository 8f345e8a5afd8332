//! `controller_quorum_voters`: who the metadata quorum's voters are and where they listen.

use std::net::SocketAddr;

use crate::config::ConfigError;

/// One metadata quorum voter from `controller_quorum_voters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub addr: SocketAddr,
}

/// Parses `id@host:port,...` (Kafka's controller.quorum.voters; hosts are IP addresses).
pub fn parse_quorum_voters(text: &str) -> Result<Vec<QuorumVoter>, ConfigError> {
    let mut voters: Vec<QuorumVoter> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let invalid = |why: &str| {
            ConfigError::Invalid(format!(
                "controller_quorum_voters entry {entry:?} {why}; expected id@ip:port"
            ))
        };
        let (id, addr) = entry.split_once('@').ok_or_else(|| invalid("has no '@'"))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| invalid("has no numeric id"))?;
        if id < 0 {
            return Err(invalid("has a negative id"));
        }
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| invalid("has no valid ip:port"))?;
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid("repeats an id"));
        }
        voters.push(QuorumVoter { id, addr });
    }
    Ok(voters)
}
