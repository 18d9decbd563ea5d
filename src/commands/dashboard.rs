//! `pypm dashboard`: print the dashboard URL with its token (SPEC §2, §7).

use std::path::Path;

use super::Failure;
use super::client_cmds::{QUICK, client_failure, from_error, no_supervisor, target};
use crate::control::client::{self, ClientError};
use crate::control::protocol::{Request, Response};

pub fn dashboard(config: Option<&Path>) -> Result<(), Failure> {
    let t = target(config)?;
    let host: std::collections::HashMap<String, String> = std::env::vars().collect();
    let cfg =
        crate::config::load(&t.located.path, &t.located.display, &host).map_err(Failure::Config)?;
    let Some(addr) = cfg.pypm.http else {
        return Err(Failure::Error(format!(
            "error: the dashboard is off for `{}`\n\nadd `http = \"127.0.0.1:9615\"` to its [pypm] table, then `pypm reload`",
            t.located.display
        )));
    };
    match client::request_for(&t.state_dir, Some(&t.located.path), Request::Ping, QUICK) {
        Ok(Response::Pong { .. }) => {}
        Ok(Response::Error { message, code }) => return Err(from_error(message, code)),
        Ok(_) => {}
        Err(ClientError::NotRunning) => return Err(no_supervisor(&t.located.display)),
        Err(e) => return Err(client_failure(e)),
    }
    let token = crate::http::token::read(&t.state_dir).ok_or_else(|| {
        Failure::Error(format!(
            "error: no token in `{}`",
            crate::http::token::path(&t.state_dir).display()
        ))
    })?;
    println!("http://{addr}/?token={token}");
    Ok(())
}
