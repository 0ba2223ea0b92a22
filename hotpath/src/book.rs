//! L2 order book (in progress).
