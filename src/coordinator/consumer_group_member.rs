//! A member of a consumer group (Kafka's ConsumerGroupMember): who it is, what it
//! subscribes to, where its reconciliation stands and its deadlines.

use std::collections::BTreeSet;
use std::time::Duration;

use regex::{Regex, RegexBuilder};
use tokio::time::Instant;

use super::current_assignment::MemberAssignment;

/// Compiled regular expressions are bounded (the request's string already is).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A subscription's regular expression, matched against whole topic names.
pub fn compile_regex(source: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(&format!("^(?:{source})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

pub struct ConsumerMember {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed_names: BTreeSet<String>,
    pub regex: Option<(String, Regex)>,
    pub server_assignor: Option<String>,
    pub assignment: MemberAssignment,
    /// A static member that left with epoch -2: it keeps its partitions until it comes
    /// back (with the same instance id) or its session runs out.
    pub left_static: bool,
    pub last_heartbeat: Instant,
    /// While partitions await revocation: when the member is fenced if it has not let go.
    pub revocation_deadline: Option<Instant>,
}

impl ConsumerMember {
    pub(super) fn subscribes_to(&self, name: &str) -> bool {
        self.subscribed_names.contains(name)
            || self.regex.as_ref().is_some_and(|(_, re)| re.is_match(name))
    }

    /// What this member reports as its epoch (-2 while a static member is away).
    pub fn reported_epoch(&self) -> i32 {
        if self.left_static {
            -2
        } else {
            self.assignment.member_epoch
        }
    }
}
