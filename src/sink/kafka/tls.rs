//! The TLS files a Kafka producer reads when it is created, watched for change.
//!
//! librdkafka reads its CA, client certificate and key once, when the producer is built;
//! cert-manager and similar renew them in place (a Secret volume swaps a symlink), so a
//! long-running producer would keep the old certificate until it expires. The sink asks
//! [`TlsFiles::changed`] before each batch (a few `stat`s) and builds a new producer when
//! it says so. The client certificate's notAfter is read here too, for the
//! `shiplog_tls_cert_expiry_timestamp_seconds{path}` gauge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// librdkafka properties naming files it reads at producer creation.
const FILE_PROPERTIES: [&str; 4] = [
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.keystore.location",
];

/// The property naming the client certificate, whose expiry is exposed.
const CERTIFICATE_PROPERTY: &str = "ssl.certificate.location";

/// What tells one version of a file from the next: where its path leads and its
/// modification time and size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

/// The TLS files of one producer's properties, as last seen.
#[derive(Debug, Default)]
pub struct TlsFiles {
    /// Each file and its stamp (`None`: missing when last looked at).
    files: Vec<(PathBuf, Option<Stamp>)>,
    /// The client certificate, when one is configured.
    certificate: Option<PathBuf>,
}

impl TlsFiles {
    /// The files `properties` name, stamped as they are now.
    pub fn new(properties: &BTreeMap<String, String>) -> TlsFiles {
        let files = FILE_PROPERTIES
            .iter()
            .filter_map(|property| properties.get(*property))
            .filter(|value| !value.is_empty() && *value != "probe")
            .map(|value| {
                let path = PathBuf::from(value);
                let stamp = stamp(&path);
                (path, stamp)
            })
            .collect();
        TlsFiles {
            files,
            certificate: properties.get(CERTIFICATE_PROPERTY).map(PathBuf::from),
        }
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

    /// The client certificate's path and its notAfter in Unix seconds, when one is
    /// configured; the error says why it could not be read.
    pub fn certificate_expiry(&self) -> Option<(&Path, Result<i64, String>)> {
        let path = self.certificate.as_deref()?;
        Some((path, not_after(path)))
    }
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

/// The notAfter of the first certificate in the PEM file at `path`.
fn not_after(path: &Path) -> Result<i64, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&bytes)
        .map_err(|e| format!("{} is not a PEM certificate: {e}", path.display()))?;
    let certificate = pem
        .parse_x509()
        .map_err(|e| format!("{} is not an X.509 certificate: {e}", path.display()))?;
    Ok(certificate.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/tls")
            .join(name)
    }

    #[test]
    fn a_replaced_certificate_is_noticed_and_its_expiry_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("tls.crt");
        std::fs::copy(fixture("client-1.crt"), &cert).expect("copy");
        let properties = BTreeMap::from([
            (
                "ssl.certificate.location".to_owned(),
                cert.display().to_string(),
            ),
            (
                "ssl.key.location".to_owned(),
                dir.path().join("tls.key").display().to_string(),
            ),
            ("linger.ms".to_owned(), "5".to_owned()),
        ]);
        let mut files = TlsFiles::new(&properties);
        assert!(!files.changed(), "nothing changed yet");
        let (path, first) = files.certificate_expiry().expect("a client certificate");
        assert_eq!(path, cert);
        let first = first.expect("readable");

        // A Secret volume's update: a new file renamed over the old one.
        let next = dir.path().join("tls.crt.new");
        std::fs::copy(fixture("client-2.crt"), &next).expect("copy");
        std::fs::rename(&next, &cert).expect("rename");
        assert!(files.changed(), "the certificate was replaced");
        assert!(!files.changed(), "and is stamped anew");
        let second = files
            .certificate_expiry()
            .expect("configured")
            .1
            .expect("readable");
        assert_eq!(
            second - first,
            30 * 24 * 3600,
            "client-2 outlives client-1 by 30 days"
        );

        std::fs::write(dir.path().join("tls.key"), b"key").expect("write key");
        assert!(files.changed(), "a key that appears is a change");
    }

    #[test]
    fn a_file_that_is_not_a_certificate_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bad = dir.path().join("tls.crt");
        std::fs::write(&bad, b"not a certificate").expect("write");
        let properties =
            BTreeMap::from([(CERTIFICATE_PROPERTY.to_owned(), bad.display().to_string())]);
        let files = TlsFiles::new(&properties);
        let error = files
            .certificate_expiry()
            .expect("configured")
            .1
            .expect_err("bad");
        assert!(error.contains("is not a PEM certificate"), "{error}");
        assert!(
            TlsFiles::new(&BTreeMap::new())
                .certificate_expiry()
                .is_none()
        );
    }
}
