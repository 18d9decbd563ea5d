//! The control plane: the protocol shared by client and daemon, the socket server the supervisor
//! runs, and the client the CLI uses.

pub mod client;
pub mod gate;
pub mod protocol;
pub mod server;

#[cfg(test)]
mod tests;
