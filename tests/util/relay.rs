//! A relay in front of the mock brokers, standing where a TLS-terminating proxy or a load
//! balancer stands in front of real ones: one listener on 127.0.0.1 per broker, forwarding
//! Kafka requests and responses frame by frame. It rewrites the brokers' addresses in
//! responses (the brokers advertise their own ports) so that clients come back through it.
//!
//! With TLS it checks client certificates against the test CA and can refuse one (as
//! brokers refuse an expired or revoked certificate) and close its connections. It can
//! also stall: swallow every request while connections stay open, as a broker that lost
//! a producer's state answers nothing useful. It notes which certificate each Produce
//! request came with, and when.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Kafka API key of Produce requests.
const PRODUCE: i16 = 0;

/// The relays of one mock cluster, running on their own runtime until dropped.
pub struct Relay {
    runtime: tokio::runtime::Runtime,
    /// The relays' addresses, as a client's bootstrap servers.
    pub bootstrap: String,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Client certificates (DER) refused from now on.
    refused: Mutex<HashSet<Vec<u8>>>,
    /// Open connections: their client certificate and their task, to close them.
    connections: Mutex<Vec<(Option<Vec<u8>>, tokio::task::AbortHandle)>>,
    /// Each Produce request forwarded: its connection's client certificate, and when.
    produces: Mutex<Vec<(Option<Vec<u8>>, Instant)>>,
    /// Requests are swallowed, not forwarded.
    stalled: AtomicBool,
}

impl Relay {
    /// Plain TCP relays in front of `brokers` (`host:port,...` on 127.0.0.1).
    pub fn plain(brokers: &str) -> Relay {
        Relay::start(brokers, None)
    }

    /// TLS relays presenting `pki/broker.crt`, asking for a client certificate issued by
    /// `pki/ca.crt`.
    pub fn tls(brokers: &str, pki: &Path) -> Relay {
        Relay::start(brokers, Some(pki))
    }

    fn start(brokers: &str, pki: Option<&Path>) -> Relay {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("relay runtime");
        let state = Arc::new(State::default());
        let acceptor = pki.map(|pki| acceptor(pki, Arc::clone(&state)));
        let targets: Vec<u16> = brokers
            .split(',')
            .map(|b| {
                b.rsplit_once(':')
                    .expect("host:port")
                    .1
                    .parse()
                    .expect("port")
            })
            .collect();
        let listeners: Vec<TcpListener> = runtime.block_on(async {
            let mut all = Vec::new();
            for _ in &targets {
                all.push(TcpListener::bind("127.0.0.1:0").await.expect("bind"));
            }
            all
        });
        let ports: HashMap<u16, u16> = targets
            .iter()
            .zip(&listeners)
            .map(|(target, l)| (*target, l.local_addr().expect("address").port()))
            .collect();
        let bootstrap = ports
            .values()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let ports = Arc::new(ports);
        for (target, listener) in targets.into_iter().zip(listeners) {
            let (state, ports, acceptor) =
                (Arc::clone(&state), Arc::clone(&ports), acceptor.clone());
            runtime.spawn(accept(listener, target, ports, acceptor, state));
        }
        Relay {
            runtime,
            bootstrap,
            state,
        }
    }

    /// Refuses the certificate in the PEM file `certificate` from now on (the TLS
    /// handshake fails with "certificate revoked") and closes its open connections.
    pub fn refuse(&self, certificate: &Path) {
        let der = der(certificate);
        self.state
            .refused
            .lock()
            .expect("relay state")
            .insert(der.clone());
        let mut connections = self.state.connections.lock().expect("relay state");
        connections.retain(|(cert, task)| {
            let refused = cert.as_ref() == Some(&der);
            if refused {
                task.abort();
            }
            !refused
        });
    }

    /// Swallows every request from now on (`true`) or forwards them again (`false`).
    pub fn stall(&self, stalled: bool) {
        self.state.stalled.store(stalled, Ordering::SeqCst);
    }

    /// When the first Produce request came with the certificate in `certificate`.
    pub fn first_produce_with(&self, certificate: &Path) -> Option<Instant> {
        let der = der(certificate);
        let produces = self.state.produces.lock().expect("relay state");
        produces
            .iter()
            .find(|(cert, _)| cert.as_ref() == Some(&der))
            .map(|(_, at)| *at)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for (_, task) in self
            .state
            .connections
            .lock()
            .expect("relay state")
            .drain(..)
        {
            task.abort();
        }
    }
}

fn der(certificate: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(certificate)
        .expect("a PEM certificate")
        .as_ref()
        .to_vec()
}

/// The TLS side: the brokers' certificate, client certificates checked against the CA
/// and the refused set.
fn acceptor(pki: &Path, state: Arc<State>) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(pki.join("ca.crt")).expect("CA"))
        .expect("root");
    let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("client verifier");
    let verifier = Arc::new(Refusing { inner, state });
    let chain = vec![CertificateDer::from_pem_file(pki.join("broker.crt")).expect("cert")];
    let key = PrivateKeyDer::from_pem_file(pki.join("broker.key")).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Client certificates must chain to the CA and not be refused.
struct Refusing {
    inner: Arc<dyn ClientCertVerifier>,
    state: Arc<State>,
}

impl std::fmt::Debug for Refusing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refusing")
    }
}

impl ClientCertVerifier for Refusing {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .state
            .refused
            .lock()
            .expect("relay state")
            .contains(end_entity.as_ref())
        {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

async fn accept(
    listener: TcpListener,
    target: u16,
    ports: Arc<HashMap<u16, u16>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
) {
    while let Ok((client, _)) = listener.accept().await {
        let (ports, acceptor, state) = (Arc::clone(&ports), acceptor.clone(), Arc::clone(&state));
        tokio::spawn(async move {
            let Ok(broker) = TcpStream::connect(("127.0.0.1", target)).await else {
                return;
            };
            match acceptor {
                None => relay(client, broker, None, ports, state).await,
                Some(acceptor) => {
                    // A refused or unknown certificate fails the handshake here.
                    let Ok(tls) = acceptor.accept(client).await else {
                        return;
                    };
                    let cert = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.as_ref().to_vec());
                    relay(tls, broker, cert, ports, state).await;
                }
            }
        });
    }
}

/// Forwards frames both ways until either side closes; registered so that
/// [`Relay::refuse`] can close it.
async fn relay<C>(
    client: C,
    broker: TcpStream,
    cert: Option<Vec<u8>>,
    ports: Arc<HashMap<u16, u16>>,
    state: Arc<State>,
) where
    C: AsyncRead + AsyncWrite + Send + 'static,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (broker_read, broker_write) = broker.into_split();
    let mut requests = tokio::spawn(requests(
        client_read,
        broker_write,
        cert.clone(),
        Arc::clone(&state),
    ));
    let mut responses = tokio::spawn(responses(broker_read, client_write, ports));
    {
        let mut connections = state.connections.lock().expect("relay state");
        connections.push((cert.clone(), requests.abort_handle()));
        connections.push((cert, responses.abort_handle()));
    }
    tokio::select! {
        _ = &mut requests => {},
        _ = &mut responses => {},
    }
    // Either way closed (or aborted): the other half goes too, closing the connection.
    requests.abort();
    responses.abort();
}

async fn frame(from: &mut (impl AsyncRead + Unpin)) -> Option<Vec<u8>> {
    let size = from.read_i32().await.ok()?;
    let mut body = vec![0; usize::try_from(size).ok()?];
    from.read_exact(&mut body).await.ok()?;
    Some(body)
}

async fn requests(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    cert: Option<Vec<u8>>,
    state: Arc<State>,
) {
    while let Some(body) = frame(&mut from).await {
        if state.stalled.load(Ordering::SeqCst) {
            continue;
        }
        if body.len() >= 2 && i16::from_be_bytes([body[0], body[1]]) == PRODUCE {
            let mut produces = state.produces.lock().expect("relay state");
            produces.push((cert.clone(), Instant::now()));
        }
        let size = i32::try_from(body.len()).expect("frame size");
        if to.write_i32(size).await.is_err() || to.write_all(&body).await.is_err() {
            return;
        }
    }
}

/// Responses, with every advertised `127.0.0.1` + broker port turned into the port of
/// that broker's relay (same length, so frame sizes stay).
async fn responses(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    ports: Arc<HashMap<u16, u16>>,
) {
    const HOST: &[u8] = b"127.0.0.1";
    while let Some(mut body) = frame(&mut from).await {
        let mut at = 0;
        while let Some(found) = memchr::memmem::find(&body[at..], HOST) {
            let port_at = at + found + HOST.len();
            if let Some(bytes) = body.get(port_at..port_at + 4) {
                let port = i32::from_be_bytes(bytes.try_into().expect("4 bytes"));
                if let Some(relay) = u16::try_from(port).ok().and_then(|p| ports.get(&p)) {
                    body[port_at..port_at + 4].copy_from_slice(&i32::from(*relay).to_be_bytes());
                }
            }
            at = port_at;
        }
        let size = i32::try_from(body.len()).expect("frame size");
        if to.write_i32(size).await.is_err() || to.write_all(&body).await.is_err() {
            return;
        }
    }
}
