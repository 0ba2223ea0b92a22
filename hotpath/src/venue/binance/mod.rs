//! Binance codecs (in progress).
