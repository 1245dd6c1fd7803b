//! wip
pub mod planner;
