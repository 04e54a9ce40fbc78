//! The TLS files a Kafka producer reads when it is created: watched for change, checked
//! before a new producer is built from them, and read for their expiry.
//!
//! librdkafka reads its CA, client certificate and key once, when the producer is built;
//! cert-manager and similar renew them in place (a Secret volume swaps a symlink), so a
//! long-running producer would keep the old certificate until it expires. The sink asks
//! [`TlsFiles::changed`] (a few `stat`s) before each batch and, while a batch waits on its
//! delivery reports, every [`super::producer::TLS_LOOK_INTERVAL`]. Before a new producer
//! is built from changed files, [`TlsFiles::check`] makes sure they form a usable pair: a
//! key that does not match its certificate, or a certificate not valid now, would only
//! replace a producer that may still work with one that cannot.
//!
//! The notAfter of the client certificate and of the CA file feed
//! `shiplog_tls_cert_expiry_timestamp_seconds{path}`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

/// librdkafka properties naming files it reads at producer creation.
const FILE_PROPERTIES: [&str; 4] = [
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
];

/// What tells one version of a file from the next: where its path leads and its
/// modification time and size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

/// A file that keeps the TLS files from making a usable producer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// The TLS files of one producer's properties, as last seen.
#[derive(Debug, Default)]
pub struct TlsFiles {
    /// Each file and its stamp (`None`: missing when last looked at).
    files: Vec<(PathBuf, Option<Stamp>)>,
    /// `ssl.certificate.location`.
    certificate: Option<PathBuf>,
    /// `ssl.key.location`.
    key: Option<PathBuf>,
    /// `ssl.key.password` is set: the key is encrypted, and only librdkafka reads it.
    key_encrypted: bool,
    /// `ssl.ca.location`, when it names a file (it may name a folder, or `probe`).
    ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files `properties` name, stamped as they are now.
    pub fn new(properties: &BTreeMap<String, String>) -> TlsFiles {
        let path = |property: &str| {
            properties
                .get(property)
                .filter(|value| !value.is_empty() && *value != "probe")
                .map(PathBuf::from)
        };
        let files = FILE_PROPERTIES
            .iter()
            .filter_map(|property| path(property))
            .map(|path| {
                let stamp = stamp(&path);
                (path, stamp)
            })
            .collect();
        TlsFiles {
            files,
            certificate: path("ssl.certificate.location"),
            key: path("ssl.key.location"),
            key_encrypted: properties.contains_key("ssl.key.password"),
            ca: path("ssl.ca.location").filter(|ca| !ca.is_dir()),
        }
    }

    /// Whether any file is named at all (nothing to watch otherwise).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether any file changed since the last look (or since [`TlsFiles::new`]).
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }

    /// Checks the files as a new producer would read them, at Unix time `now`: each one
    /// readable, the CA file and the client certificate PEM certificates, the client
    /// certificate valid at `now`, and the key the one its certificate was issued for.
    pub fn check(&self, now: i64) -> Result<(), Broken> {
        for (path, _) in &self.files {
            if !path.is_dir() {
                read(path)?;
            }
        }
        if let Some(ca) = &self.ca {
            certificates(ca)?;
        }
        let Some(certificate) = &self.certificate else {
            return Ok(());
        };
        let der = first_certificate(certificate)?;
        let (not_before, not_after) = validity(certificate, &der)?;
        if now < not_before {
            let reason = format!("not valid before {}", utc(not_before));
            return Err(broken(certificate, reason));
        }
        if now > not_after {
            let reason = format!("expired at {}", utc(not_after));
            return Err(broken(certificate, reason));
        }
        match &self.key {
            Some(key) if !self.key_encrypted => key_matches(key, certificate, der),
            _ => Ok(()),
        }
    }

    /// The client certificate's path, when one is configured.
    pub fn certificate(&self) -> Option<&Path> {
        self.certificate.as_deref()
    }

    /// The notAfter, in Unix seconds, of the client certificate and of the CA file (of the
    /// first of its certificates to expire), for those configured; the error says why it
    /// could not be read.
    pub fn expiries(&self) -> Vec<(&Path, Result<i64, Broken>)> {
        let certificate = self.certificate.as_deref().map(|path| {
            let expiry = first_certificate(path)
                .and_then(|der| validity(path, &der))
                .map(|(_, not_after)| not_after);
            (path, expiry)
        });
        let ca = self.ca.as_deref().map(|path| {
            let expiry = certificates(path).and_then(|all| {
                all.iter()
                    .map(|der| validity(path, der).map(|(_, not_after)| not_after))
                    .try_fold(i64::MAX, |earliest, next| Ok(earliest.min(next?)))
            });
            (path, expiry)
        });
        certificate.into_iter().chain(ca).collect()
    }
}

/// A Unix time as RFC 3339 UTC, for log lines.
pub fn utc(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: metadata.ino(),
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

fn broken(path: &Path, reason: String) -> Broken {
    Broken {
        path: path.to_owned(),
        reason,
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Broken> {
    std::fs::read(path).map_err(|e| broken(path, format!("cannot be read: {e}")))
}

/// Every PEM certificate in the file at `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Broken> {
    let bytes = read(path)?;
    let all = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| broken(path, format!("is not a PEM certificate file: {e}")))?;
    if all.is_empty() {
        return Err(broken(path, "holds no PEM certificate".to_owned()));
    }
    Ok(all)
}

fn first_certificate(path: &Path) -> Result<CertificateDer<'static>, Broken> {
    let mut all = certificates(path)?;
    Ok(all.swap_remove(0))
}

/// notBefore and notAfter of a certificate, in Unix seconds.
fn validity(path: &Path, der: &[u8]) -> Result<(i64, i64), Broken> {
    let (_, certificate) = X509Certificate::from_der(der)
        .map_err(|e| broken(path, format!("is not an X.509 certificate: {e}")))?;
    let validity = certificate.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// Whether the private key at `key` belongs to `certificate` (its public key is the
/// certificate's). A key of a kind the check cannot load is left to librdkafka.
fn key_matches(key: &Path, certificate: &Path, der: CertificateDer<'static>) -> Result<(), Broken> {
    let bytes = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| broken(key, format!("holds no PEM private key: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let Ok(signing) = provider.key_provider.load_private_key(private) else {
        return Ok(());
    };
    match rustls::sign::CertifiedKey::new(vec![der], signing).keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            let reason = format!(
                "does not match the certificate {} (not the key it was issued for)",
                certificate.display()
            );
            Err(broken(key, reason))
        }
        // Matching, or of a kind whose public key cannot be compared: librdkafka decides.
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/tls")
            .join(name)
    }

    fn properties(pairs: &[(&str, &Path)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, path)| ((*key).to_owned(), path.display().to_string()))
            .collect()
    }

    /// 2026-11-30 (the test PKI is valid from 2000 to 2125).
    const NOW: i64 = 1_796_000_000;

    #[test]
    fn a_replaced_certificate_is_noticed_and_its_expiry_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("tls.crt");
        std::fs::copy(fixture("client-1.crt"), &cert).expect("copy");
        let key = dir.path().join("tls.key");
        let mut files = TlsFiles::new(&properties(&[
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
        ]));
        assert!(!files.changed(), "nothing changed yet");
        let expiry = |files: &TlsFiles| {
            let all = files.expiries();
            assert_eq!(all.len(), 1, "the client certificate only");
            assert_eq!(all[0].0, cert);
            all[0].1.clone().expect("readable")
        };
        let first = expiry(&files);

        // A Secret volume's update: a new file renamed over the old one.
        let next = dir.path().join("tls.crt.new");
        std::fs::copy(fixture("client-2.crt"), &next).expect("copy");
        std::fs::rename(&next, &cert).expect("rename");
        assert!(files.changed(), "the certificate was replaced");
        assert!(!files.changed(), "and is stamped anew");
        assert_eq!(
            expiry(&files) - first,
            30 * 24 * 3600,
            "client-2 outlives client-1 by 30 days"
        );

        std::fs::write(&key, b"key").expect("write key");
        assert!(files.changed(), "a key that appears is a change");
    }

    #[test]
    fn a_matching_pair_valid_now_with_its_ca_passes_the_check() {
        let files = TlsFiles::new(&properties(&[
            ("ssl.ca.location", &fixture("pki/ca.crt")),
            ("ssl.certificate.location", &fixture("pki/client-a.crt")),
            ("ssl.key.location", &fixture("pki/client-a.key")),
        ]));
        assert_eq!(files.check(NOW), Ok(()));
        let expiries: Vec<(PathBuf, i64)> = files
            .expiries()
            .into_iter()
            .map(|(path, expiry)| (path.to_owned(), expiry.expect("readable")))
            .collect();
        // 2125-01-01T00:00:00Z, both.
        let end = 4_891_363_200;
        assert_eq!(
            expiries,
            [
                (fixture("pki/client-a.crt"), end),
                (fixture("pki/ca.crt"), end)
            ]
        );
    }

    #[test]
    fn a_broken_pair_names_the_file_at_fault_and_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, b"not a certificate").expect("write");
        let missing = dir.path().join("missing.key");
        let cases: [(&str, &Path, &Path, &Path, &str); 6] = [
            (
                "a key of another certificate",
                &fixture("pki/client-a.crt"),
                &fixture("pki/client-b.key"),
                &fixture("pki/client-b.key"),
                "does not match the certificate",
            ),
            (
                "a certificate not valid yet",
                &fixture("pki/client-future.crt"),
                &fixture("pki/client-b.key"),
                &fixture("pki/client-future.crt"),
                "not valid before 2099-01-01T00:00:00Z",
            ),
            (
                "an expired certificate",
                &fixture("client-1.crt"),
                &fixture("pki/client-b.key"),
                &fixture("client-1.crt"),
                "expired at 2027-01-01T17:51:50Z",
            ),
            (
                "a key file that is missing",
                &fixture("pki/client-a.crt"),
                &missing,
                &missing,
                "cannot be read",
            ),
            (
                "a certificate file that is no certificate",
                &garbage,
                &fixture("pki/client-a.key"),
                &garbage,
                "holds no PEM certificate",
            ),
            (
                "a key file that is no key",
                &fixture("pki/client-a.crt"),
                &garbage,
                &garbage,
                "holds no PEM private key",
            ),
        ];
        for (case, cert, key, at_fault, reason) in cases {
            let files = TlsFiles::new(&properties(&[
                ("ssl.certificate.location", cert),
                ("ssl.key.location", key),
            ]));
            // client-1 expired in January 2027: look from a year later.
            let error = files.check(NOW + 365 * 24 * 3600).expect_err(case);
            assert_eq!(error.path, at_fault, "{case}: {error}");
            assert!(error.reason.contains(reason), "{case}: {error}");
        }
    }

    #[test]
    fn an_encrypted_key_and_a_ca_folder_are_left_to_librdkafka() {
        let mut properties = properties(&[
            ("ssl.certificate.location", &fixture("pki/client-a.crt")),
            ("ssl.key.location", &fixture("pki/client-b.key")),
            ("ssl.ca.location", &fixture("pki")),
        ]);
        properties.insert("ssl.key.password".to_owned(), "secret".to_owned());
        let files = TlsFiles::new(&properties);
        assert_eq!(files.check(NOW), Ok(()));
        assert_eq!(files.expiries().len(), 1, "no expiry for a folder");
    }
}
