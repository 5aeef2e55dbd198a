//! W3C Baggage: the `baggage` header read with the specification's limits (64 entries, 8192
//! bytes, whole entries dropped past them) and written so that every value is extracted again
//! unchanged.

use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;

use inferd_otel::propagate::BAGGAGE;

/// W3C Baggage limits: at least this many entries and bytes are kept.
pub(super) const MAX_BAGGAGE_ENTRIES: usize = 64;
pub(super) const MAX_BAGGAGE_BYTES: usize = 8192;

/// W3C Baggage propagator: repeated headers are joined, invalid entries dropped, and whole
/// entries past 64 entries / 8192 bytes dropped (never cut), on the way in and on the way out.
/// Values go out percent-encoded wherever the baggage grammar needs it (`%` and `\` too,
/// which the stock injector leaves as they are), so they are extracted again unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct BaggageLimitsPropagator;

impl TextMapPropagator for BaggageLimitsPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let header = baggage_header(cx.baggage());
        if !header.is_empty() {
            injector.set(BAGGAGE, header);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(values) = extractor.get_all(BAGGAGE) else {
            return cx.clone();
        };
        let mut baggage = Baggage::new();
        let mut bytes = 0;
        for member in values.iter().flat_map(|v| v.split(',')) {
            let member = member.trim();
            if member.is_empty() {
                continue;
            }
            if baggage.len() >= MAX_BAGGAGE_ENTRIES || bytes + member.len() > MAX_BAGGAGE_BYTES {
                break;
            }
            if let Some((key, value, metadata)) = parse_baggage_member(member) {
                if baggage.insert_with_metadata(key, value, metadata).is_none() {
                    bytes += member.len();
                }
            }
        }
        if baggage.is_empty() {
            cx.clone()
        } else {
            cx.with_baggage(baggage)
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(BAGGAGE_FIELDS.as_slice())
    }
}

static BAGGAGE_FIELDS: std::sync::LazyLock<[String; 1]> =
    std::sync::LazyLock::new(|| [BAGGAGE.to_owned()]);

/// The `baggage` header value for `baggage`: `key=value;properties` members (`Baggage` holds
/// at most 64 entries, and only keys that are tokens). Properties that would break the list
/// (a `,` or a character that is not printable ASCII) are left out; entries past 8192 bytes
/// of header are left out whole.
fn baggage_header(baggage: &Baggage) -> String {
    let mut header = String::new();
    let mut member = String::new();
    for (key, (value, metadata)) in baggage {
        member.clear();
        member.push_str(key.as_str());
        member.push('=');
        percent_encode_into(value.as_str(), &mut member);
        let metadata = metadata.as_str().trim();
        if !metadata.is_empty()
            && metadata
                .bytes()
                .all(|b| (b == b'\t' || (0x20..=0x7e).contains(&b)) && b != b',')
        {
            member.push(';');
            member.push_str(metadata);
        }
        let separator = usize::from(!header.is_empty());
        if header.len() + separator + member.len() > MAX_BAGGAGE_BYTES {
            continue;
        }
        if separator == 1 {
            header.push(',');
        }
        header.push_str(&member);
    }
    header
}

/// `baggage-octet`: the characters a baggage value may hold unencoded.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

/// Appends `value` to `out` with every byte that is not a baggage octet, and `%`,
/// percent-encoded.
fn percent_encode_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if is_baggage_octet(b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

pub(super) fn parse_baggage_member(member: &str) -> Option<(String, String, String)> {
    let (pair, metadata) = member.split_once(';').unwrap_or((member, ""));
    let (key, value) = pair.split_once('=')?;
    let key = key.trim();
    if !is_token(key) {
        return None;
    }
    let value = value.trim();
    if !value.bytes().all(is_baggage_octet) {
        return None;
    }
    let value = percent_decode(value)?;
    Some((key.to_owned(), value, metadata.trim().to_owned()))
}

/// Decodes `%XX` escapes (two hex digits each); `None` for a malformed escape or bytes that
/// are not UTF-8. Used for baggage values and `OTEL_RESOURCE_ATTRIBUTES`.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Two hex digits: from_str_radix alone would also take a sign (`%+1`).
            let hex = s
                .get(i + 1..i + 3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
