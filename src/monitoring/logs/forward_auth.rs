//! The Forward protocol's handshake (Forward Protocol Specification v1, "Handshake Messages"), for a
//! source with `<security>`: before any event the server sends `HELO` with a fresh nonce (and a salt
//! when users must authenticate); the client answers
//! `["PING", hostname, salt, sha512_hex(salt + hostname + nonce + shared_key), username, password_digest]`;
//! the server checks it and answers `["PONG", ok, reason, self_hostname, sha512_hex(salt + self_hostname +
//! nonce + shared_key)]`, closing the connection when it failed. Digests are compared in constant time.

use std::time::Duration;

use rand::RngCore as _;
use rmpv::Value as Msgpack;
use sha2::{Digest, Sha512};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::config::ForwardSecurity;
use super::forward::FrameDecoder;

/// How long a client has to answer HELO.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection's side of the handshake: its nonce and user-auth salt.
pub struct Handshake<'a> {
    security: &'a ForwardSecurity,
    nonce: [u8; 16],
    auth_salt: Option<[u8; 16]>,
}

impl<'a> Handshake<'a> {
    /// A handshake with a fresh nonce (and salt, when users must authenticate) from OS randomness:
    /// live mode only, as the listeners are.
    pub fn new(security: &'a ForwardSecurity) -> Handshake<'a> {
        let mut rng = rand::thread_rng();
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        let auth_salt = (!security.users.is_empty()).then(|| {
            let mut salt = [0u8; 16];
            rng.fill_bytes(&mut salt);
            salt
        });
        Handshake { security, nonce, auth_salt }
    }

    /// `["HELO", {"nonce": bin, "auth": bin or "", "keepalive": true}]`.
    pub fn helo(&self) -> Vec<u8> {
        let auth = match &self.auth_salt {
            Some(salt) => Msgpack::Binary(salt.to_vec()),
            None => Msgpack::from(""),
        };
        encode(&Msgpack::Array(vec![
            Msgpack::from("HELO"),
            Msgpack::Map(vec![
                (Msgpack::from("nonce"), Msgpack::Binary(self.nonce.to_vec())),
                (Msgpack::from("auth"), auth),
                (Msgpack::from("keepalive"), Msgpack::Boolean(true)),
            ]),
        ]))
    }

    /// Checks a client's PING: `Ok(PONG bytes)` when it passes, else the reason and the PONG that says so.
    pub fn check_ping(&self, ping: &Msgpack) -> Result<Vec<u8>, (String, Vec<u8>)> {
        let refuse = |reason: &str| (reason.to_owned(), self.pong(false, reason, None));
        let Some(items) = ping.as_array() else { return Err(refuse("invalid ping message")) };
        let field = |i: usize| items.get(i).and_then(bytes_of);
        if items.len() != 6 || field(0) != Some(b"PING".as_slice()) {
            return Err(refuse("invalid ping message"));
        }
        let (Some(hostname), Some(salt), Some(digest), Some(username), Some(password)) =
            (field(1), field(2), field(3), field(4), field(5))
        else {
            return Err(refuse("invalid ping message"));
        };
        let key = self.security.shared_key.as_bytes();
        let expected = hex_sha512(&[salt, hostname, &self.nonce, key]);
        if !same(digest, expected.as_bytes()) {
            return Err(refuse("shared_key mismatch"));
        }
        if let Some(auth_salt) = &self.auth_salt {
            let known = self.security.users.iter().any(|(name, pass)| {
                let expected = hex_sha512(&[auth_salt, name.as_bytes(), pass.as_bytes()]);
                // Both checks run for every user, so a name's existence does not show in the time taken.
                same(username, name.as_bytes()) & same(password, expected.as_bytes())
            });
            if !known {
                return Err(refuse("username/password mismatch"));
            }
        }
        Ok(self.pong(true, "", Some(salt)))
    }

    /// `["PONG", ok, reason, self_hostname, digest]`; a refusal carries no name or digest, as Fluentd's.
    fn pong(&self, ok: bool, reason: &str, salt: Option<&[u8]>) -> Vec<u8> {
        let sec = self.security;
        let (host, digest) = match salt {
            Some(salt) if ok => (
                sec.self_hostname.as_str(),
                hex_sha512(&[salt, sec.self_hostname.as_bytes(), &self.nonce, sec.shared_key.as_bytes()]),
            ),
            _ => ("", String::new()),
        };
        encode(&Msgpack::Array(vec![
            Msgpack::from("PONG"),
            Msgpack::Boolean(ok),
            Msgpack::from(reason),
            Msgpack::from(host),
            Msgpack::from(digest),
        ]))
    }
}

/// Runs the server's side of the handshake on a new connection. Bytes the client sent after its PING
/// stay in `decoder`. `Err` says why the connection must close.
pub async fn handshake(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    security: &ForwardSecurity,
) -> Result<(), String> {
    let hs = Handshake::new(security);
    stream.write_all(&hs.helo()).await.map_err(|e| format!("cannot send HELO: {e}"))?;
    let mut buf = vec![0u8; 4096];
    let ping = tokio::time::timeout(PING_TIMEOUT, async {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(format!("PING is not msgpack: {e}")),
            }
            match stream.read(&mut buf).await {
                Ok(0) => return Err("closed before PING".to_owned()),
                Ok(n) => decoder.push(&buf[..n]),
                Err(e) => return Err(format!("read failed before PING: {e}")),
            }
        }
    })
    .await
    .map_err(|_| format!("no PING within {PING_TIMEOUT:?}"))??;
    match hs.check_ping(&ping) {
        Ok(pong) => stream.write_all(&pong).await.map_err(|e| format!("cannot send PONG: {e}")),
        Err((reason, pong)) => {
            // Best effort: the client learns why before the connection closes.
            let _ = stream.write_all(&pong).await;
            Err(reason)
        }
    }
}

/// A msgpack string's or binary's bytes (clients send salts and digests as either).
fn bytes_of(value: &Msgpack) -> Option<&[u8]> {
    match value {
        Msgpack::String(s) => Some(s.as_bytes()),
        Msgpack::Binary(b) => Some(b),
        _ => None,
    }
}

/// Lower-case hex SHA-512 of the parts, concatenated.
fn hex_sha512(parts: &[&[u8]]) -> String {
    let mut hasher = Sha512::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Equality whose time depends on the lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn encode(value: &Msgpack) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing msgpack into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(users: &[(&str, &str)]) -> ForwardSecurity {
        ForwardSecurity {
            self_hostname: "chaoslab".into(),
            shared_key: "secret".into(),
            users: users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect(),
        }
    }

    fn decode(bytes: &[u8]) -> Msgpack {
        rmpv::decode::read_value(&mut &bytes[..]).unwrap()
    }

    fn ping(salt: &[u8], host: &str, digest: &str, user: &str, password: &str) -> Msgpack {
        Msgpack::Array(vec![
            Msgpack::from("PING"),
            Msgpack::from(host),
            Msgpack::Binary(salt.to_vec()),
            Msgpack::from(digest),
            Msgpack::from(user),
            Msgpack::from(password),
        ])
    }

    #[test]
    fn digests_are_the_specs_sha512_hex() {
        // Computed independently with Python's hashlib.
        assert_eq!(
            hex_sha512(&[b"salt", b"client.example", b"0123456789abcdef", b"secret"]),
            "7e9f1a0b5bc39d77b6caf28087890cb511891020d4de2db812882fe41fd66fe6d1e4944a3931ec61d7a3f67dd9a19769ce9fd34a40f83d960461ac59a8b81661"
        );
        assert_eq!(
            hex_sha512(&[b"AUTHSALT", b"alice", b"pw"]),
            "a8f12eea4d1d59f67541d29f7b8deba18a4ec74831fdf9adb5edd35d1e1b3e80d50a45b03de3acfcd36293a157ce5f038749900b7bb2cb9bc9ab92c8ce70a1ef"
        );
    }

    #[test]
    fn a_ping_with_the_key_gets_a_pong_proving_the_server_knows_it_too() {
        let sec = security(&[]);
        let mut hs = Handshake::new(&sec);
        hs.nonce = *b"0123456789abcdef";
        let helo = decode(&hs.helo());
        assert_eq!(helo[0].as_str(), Some("HELO"));
        let opts: Vec<(&str, &Msgpack)> =
            helo[1].as_map().unwrap().iter().map(|(k, v)| (k.as_str().unwrap(), v)).collect();
        assert_eq!(opts[0], ("nonce", &Msgpack::Binary(b"0123456789abcdef".to_vec())));
        assert_eq!(opts[1], ("auth", &Msgpack::from("")));

        let digest = hex_sha512(&[b"salt", b"client.example", b"0123456789abcdef", b"secret"]);
        let pong = decode(&hs.check_ping(&ping(b"salt", "client.example", &digest, "", "")).unwrap());
        assert_eq!(
            (pong[0].as_str(), pong[1].as_bool(), pong[2].as_str()),
            (Some("PONG"), Some(true), Some(""))
        );
        assert_eq!(pong[3].as_str(), Some("chaoslab"));
        assert_eq!(
            pong[4].as_str(),
            Some(
                "b9fd0db1b5ddc31ea0ddc059dbfc782354e1ea08327be4a7905b52a4e9b45a7fd5be712cbb223717cf3dfb546e6405a8cb4e1bf7b067453274c062004cd71343"
            )
        );

        let wrong = hex_sha512(&[b"salt", b"client.example", b"0123456789abcdef", b"guess"]);
        let (reason, pong) = hs.check_ping(&ping(b"salt", "client.example", &wrong, "", "")).unwrap_err();
        assert_eq!(reason, "shared_key mismatch");
        let pong = decode(&pong);
        assert_eq!(
            (pong[1].as_bool(), pong[2].as_str(), pong[4].as_str()),
            (Some(false), Some("shared_key mismatch"), Some(""))
        );
        for bad in [Msgpack::from("PING"), Msgpack::Array(vec![Msgpack::from("PONG"); 6]), Msgpack::Nil] {
            assert_eq!(hs.check_ping(&bad).unwrap_err().0, "invalid ping message");
        }
    }

    #[test]
    fn user_auth_needs_a_known_user_with_the_salted_password() {
        let sec = security(&[("alice", "pw"), ("bob", "other")]);
        let mut hs = Handshake::new(&sec);
        hs.nonce = *b"0123456789abcdef";
        hs.auth_salt = Some(*b"AUTHSALT\0\0\0\0\0\0\0\0");
        let salt = hs.auth_salt.unwrap();
        let helo = decode(&hs.helo());
        assert_eq!(helo[1].as_map().unwrap()[1].1, Msgpack::Binary(salt.to_vec()));
        let key = hex_sha512(&[b"s", b"h", b"0123456789abcdef", b"secret"]);
        let password = |user: &str, pass: &str| hex_sha512(&[&salt, user.as_bytes(), pass.as_bytes()]);
        assert!(hs.check_ping(&ping(b"s", "h", &key, "alice", &password("alice", "pw"))).is_ok());
        assert!(hs.check_ping(&ping(b"s", "h", &key, "bob", &password("bob", "other"))).is_ok());
        for (user, pass) in [("alice", "other"), ("carol", "pw"), ("", "")] {
            let (reason, _) = hs.check_ping(&ping(b"s", "h", &key, user, &password(user, pass))).unwrap_err();
            assert_eq!(reason, "username/password mismatch", "{user}/{pass}");
        }
    }
}

#[cfg(test)]
mod socket_tests {
    use std::sync::Arc;

    use rmpv::Value as Msgpack;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{mpsc, watch};

    use super::{encode, hex_sha512};
    use crate::monitoring::logs::config::ForwardSecurity;
    use crate::monitoring::logs::forward::{ForwardStats, serve};

    /// Reads one msgpack value from the server.
    async fn read_value(stream: &mut TcpStream) -> Msgpack {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            if let Ok(v) = rmpv::decode::read_value(&mut &got[..]) {
                return v;
            }
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed while a value was expected");
            got.extend_from_slice(&buf[..n]);
        }
    }

    /// Connects, answers HELO with a PING for `key`, and returns the PONG and the stream.
    async fn connect(addr: std::net::SocketAddr, key: &str) -> (Msgpack, TcpStream) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let helo = read_value(&mut stream).await;
        let nonce = match &helo[1].as_map().unwrap()[0].1 {
            Msgpack::Binary(b) => b.clone(),
            other => panic!("nonce {other:?}"),
        };
        let digest = hex_sha512(&[b"salt", b"client", &nonce, key.as_bytes()]);
        let ping = Msgpack::Array(
            ["PING", "client", "salt", &digest, "", ""].into_iter().map(Msgpack::from).collect(),
        );
        stream.write_all(&encode(&ping)).await.unwrap();
        (read_value(&mut stream).await, stream)
    }

    #[tokio::test]
    async fn only_clients_that_know_the_shared_key_get_their_events_in() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let stats = Arc::new(ForwardStats::default());
        let (_stop, shutdown) = watch::channel(false);
        let security =
            ForwardSecurity { self_hostname: "chaoslab".into(), shared_key: "secret".into(), users: vec![] };
        tokio::spawn(serve(listener, tx, stats.clone(), shutdown, Some(Arc::new(security))));

        let (pong, mut stream) = connect(addr, "secret").await;
        assert_eq!((pong[1].as_bool(), pong[3].as_str()), (Some(true), Some("chaoslab")), "{pong:?}");
        let message = Msgpack::Array(vec![
            Msgpack::from("app.log"),
            Msgpack::from(1_700_000_000),
            Msgpack::Map(vec![(Msgpack::from("message"), Msgpack::from("hello"))]),
        ]);
        stream.write_all(&encode(&message)).await.unwrap();
        let event =
            tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!((event.tag.as_str(), &event.record["message"]), ("app.log", &serde_json::json!("hello")));

        // A wrong key: told why, then closed; the message sent along with the PING goes nowhere.
        let (pong, mut stream) = connect(addr, "guess").await;
        assert_eq!((pong[1].as_bool(), pong[2].as_str()), (Some(false), Some("shared_key mismatch")));
        let _ = stream.write_all(&encode(&message)).await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(rest.is_empty(), "closed after the refusal");
        // Skipping the handshake is no way in either.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        let _helo = read_value(&mut raw).await;
        raw.write_all(&encode(&message)).await.unwrap();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read_to_end(&mut rest)).await;
        assert!(rx.try_recv().is_err(), "no event from a client that failed or skipped the handshake");
        assert_eq!(stats.snapshot().refused, 2);
    }
}
