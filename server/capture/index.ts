/**
 * Capture: how spad sees knock datagrams. Two interchangeable sources feed one callback:
 * - createPcapCapture: libpcap on a device or `any`, before netfilter (the SPA port stays dropped);
 * - createUdpCapture: a dual-stack UDP socket (`--udp-server`).
 * decodeFrame is the pure frame decoder the pcap source uses (exported for tests and fuzzing).
 */
export { bpfFilter } from './cap-binding.js';
export {
  DECODE_FAILURES,
  type DecodedUdp,
  type DecodeFailure,
  type DecodeResult,
  decodeFrame,
  LINKTYPE,
} from './decode.js';
export {
  createPcapCapture,
  type PcapCapture,
  type PcapCaptureMode,
  type PcapCaptureStats,
  type PcapRejectReason,
} from './pcap.js';
export type { Capture, CaptureStats, Datagram, PcapCaptureOptions, UdpCaptureOptions } from './types.js';
export { canonicalSocketAddress, createUdpCapture } from './udp.js';
