//! Trace, span and generation ids as lowercase hex, written without `core::fmt`: every request
//! writes several (`traceparent` out, `traceresponse` back, the access line, the trace store,
//! its response id), and the formatting machinery costs far more than the bytes it encodes.

use opentelemetry::trace::{SpanId, TraceId};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// An id's hex digits, kept on the stack.
#[derive(Debug, Clone, Copy)]
pub struct Hex<const N: usize>([u8; N]);

impl<const N: usize> Hex<N> {
    /// The digits as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

fn encode<const N: usize>(bytes: &[u8]) -> Hex<N> {
    let mut out = [b'0'; N];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
    Hex(out)
}

/// The 32 hex digits of 128 bits (`{:032x}`): generation and response ids.
pub fn u128_hex(n: u128) -> Hex<32> {
    encode(&n.to_be_bytes())
}

/// The 2 hex digits of a byte (trace flags).
pub fn byte_hex(byte: u8) -> Hex<2> {
    encode(&[byte])
}

/// The 32 hex digits of a trace id, as its `Display` writes them.
pub fn trace_id_hex(id: TraceId) -> Hex<32> {
    encode(&id.to_bytes())
}

/// The 16 hex digits of a span id, as its `Display` writes them.
pub fn span_id_hex(id: SpanId) -> Hex<16> {
    encode(&id.to_bytes())
}

/// A `traceparent` value: `00-{trace_id}-{span_id}-{flags}`.
pub fn traceparent_bytes(trace_id: TraceId, span_id: SpanId, flags: u8) -> [u8; 55] {
    let mut out = [b'-'; 55];
    out[..2].copy_from_slice(b"00");
    out[3..35].copy_from_slice(&trace_id_hex(trace_id).0);
    out[36..52].copy_from_slice(&span_id_hex(span_id).0);
    out[53..].copy_from_slice(&byte_hex(flags).0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_matches_display() {
        for trace in [0u128, 1, 0x0af7651916cd43dd8448eb211c80319c, u128::MAX] {
            let id = TraceId::from_bytes(trace.to_be_bytes());
            assert_eq!(trace_id_hex(id).as_str(), id.to_string());
        }
        for span in [0u64, 1, 0xb7ad6b7169203331, u64::MAX] {
            let id = SpanId::from_bytes(span.to_be_bytes());
            assert_eq!(span_id_hex(id).as_str(), id.to_string());
        }
        for n in [0, 1, 0xabc, u128::from(u64::MAX), u128::MAX, 1 << 127] {
            assert_eq!(u128_hex(n).as_str(), format!("{n:032x}"));
        }
        for byte in [0u8, 1, 0x0f, 0xa5, u8::MAX] {
            assert_eq!(byte_hex(byte).as_str(), format!("{byte:02x}"));
        }
        let (trace, span) = (
            0x0af7651916cd43dd8448eb211c80319c_u128,
            0xb7ad6b7169203331_u64,
        );
        let traceparent = traceparent_bytes(
            TraceId::from_bytes(trace.to_be_bytes()),
            SpanId::from_bytes(span.to_be_bytes()),
            1,
        );
        assert_eq!(
            std::str::from_utf8(&traceparent),
            Ok(format!("00-{trace:032x}-{span:016x}-01").as_str())
        );
    }
}
