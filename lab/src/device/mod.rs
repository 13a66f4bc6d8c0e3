//! What the lab says to a device and how it reads the answer: the shell
//! commands it runs over the wired link, each next to the parser of its
//! reply. (The transport, inventory and fresh boot are still their own
//! modules; they move here next.)

pub mod commands;
