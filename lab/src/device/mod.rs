//! The device and how the lab talks to it: the SSH transport over the
//! wired link, the inventory that names devices, the traffic sender on the
//! data link, and the shell commands the lab runs (each next to the parser
//! of its reply).

pub mod boot;
pub mod commands;
pub mod inventory;
pub mod sender;
pub mod transport;
