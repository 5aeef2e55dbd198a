//! TLS for the OTLP exporters: the CA and client certificate files of one signal, read and
//! checked when the exporter is built (a file that cannot be read or holds no usable PEM stops
//! start-up with an error naming its variable and path), then handed to tonic (gRPC) or to
//! the reqwest client of OTLP/HTTP. rustls throughout; no OpenSSL.

use std::time::Duration;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{OtlpSignalConfig, TlsFile};
use crate::Error;

/// The PEM contents of one signal's TLS files, checked.
#[derive(Debug, Clone)]
pub(super) struct TlsFiles {
    /// CA certificates that replace the system's roots.
    ca: Option<Vec<u8>>,
    /// Client certificate (chain) and private key, for mTLS.
    identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    /// The TLS files of `c`, read and checked; `None` for a plaintext (`http://`) endpoint,
    /// which uses none of them.
    pub(super) fn load(c: &OtlpSignalConfig) -> Result<Option<Self>, Error> {
        if !c.endpoint.starts_with("https://") {
            return Ok(None);
        }
        let ca = c
            .certificate
            .as_ref()
            .map(|file| read_certificates(file, "of CA certificates"))
            .transpose()?;
        let identity = c
            .client_identity
            .as_ref()
            .map(|id| {
                Ok::<_, Error>((
                    read_certificates(&id.certificate, "with the client certificate")?,
                    read_private_key(&id.key)?,
                ))
            })
            .transpose()?;
        Ok(Some(TlsFiles { ca, identity }))
    }

    /// The TLS settings of a tonic channel: the CA file's certificates, or the system's roots
    /// when there is none, and the client identity.
    pub(super) fn tonic(&self) -> ClientTlsConfig {
        let config = match &self.ca {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match &self.identity {
            Some((certificate, key)) => config.identity(Identity::from_pem(certificate, key)),
            None => config,
        }
    }

    /// Applies the CA certificates (replacing the platform's roots) and the client identity
    /// to a reqwest client.
    pub(super) fn reqwest(
        &self,
        mut builder: reqwest::blocking::ClientBuilder,
    ) -> Result<reqwest::blocking::ClientBuilder, reqwest::Error> {
        if let Some(pem) = &self.ca {
            builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        if let Some((certificate, key)) = &self.identity {
            let pem = [certificate.as_slice(), b"\n", key.as_slice()].concat();
            builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
        }
        Ok(builder)
    }
}

/// Builds the blocking reqwest client of OTLP/HTTP (the SDK's own choice of client) with the
/// TLS files of an `https://` endpoint (`None` for `http://`). It is built on a thread of its
/// own: the blocking client starts a runtime, which must not happen inside the caller's.
pub(super) fn http_client(
    timeout: Duration,
    tls: Option<&TlsFiles>,
) -> Result<reqwest::blocking::Client, String> {
    let tls = tls.cloned();
    let built = std::thread::Builder::new()
        .name("otlp-http-client".into())
        .spawn(move || {
            let builder = reqwest::blocking::Client::builder().timeout(timeout);
            match &tls {
                Some(tls) => tls.reqwest(builder)?.build(),
                // A plaintext endpoint needs no roots; loading the system's would make a host
                // without any refuse to start.
                None => builder.tls_certs_only(std::iter::empty()).build(),
            }
        })
        .map_err(|e| format!("cannot start a thread to build the HTTP client: {e}"))?
        .join()
        .map_err(|_| "building the HTTP client panicked".to_owned())?;
    built.map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// `error: its source: its source's source`, as the operator needs the innermost reason
/// (e.g. `invalid peer certificate: UnknownIssuer`).
pub(super) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let next = e.to_string();
        // Some errors repeat their source's text in their own.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

fn read(file: &TlsFile, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(&file.path).map_err(|e| bad_file(file, what, &format!("it cannot be read: {e}")))
}

/// Reads a PEM file of certificates: at least one `CERTIFICATE` block, each an X.509
/// certificate.
fn read_certificates(file: &TlsFile, what: &str) -> Result<Vec<u8>, Error> {
    let pem = read(file, what)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_file(file, what, &format!("it is not valid PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(bad_file(
            file,
            what,
            "it holds no -----BEGIN CERTIFICATE----- block",
        ));
    }
    for (n, certificate) in certificates.into_iter().enumerate() {
        // Parsing it as a trust anchor checks the X.509 structure without a crypto provider.
        rustls::RootCertStore::empty()
            .add(certificate)
            .map_err(|e| {
                bad_file(
                    file,
                    what,
                    &format!(
                        "its certificate {} is not a valid X.509 certificate: {e}",
                        n + 1
                    ),
                )
            })?;
    }
    Ok(pem)
}

/// Reads a PEM file holding a private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
fn read_private_key(file: &TlsFile) -> Result<Vec<u8>, Error> {
    const WHAT: &str = "with the client's private key";
    let pem = read(file, WHAT)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(bad_file(
            file,
            WHAT,
            "it holds no -----BEGIN PRIVATE KEY----- (or RSA / EC PRIVATE KEY) block",
        )),
        Err(e) => Err(bad_file(file, WHAT, &format!("it is not valid PEM: {e}"))),
    }
}

fn bad_file(file: &TlsFile, what: &str, problem: &str) -> Error {
    Error::invalid(
        &file.variable,
        &file.path.to_string_lossy(),
        &format!("a PEM file {what}, but {problem}"),
    )
}
