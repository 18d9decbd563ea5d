//! The supervisor: one owner of state, one inbox, a pure planner.
pub mod plan;
pub mod state;
pub mod diff;
