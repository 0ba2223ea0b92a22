//! A minimal column store: rows go in as typed values, a closed sheet becomes one Arrow
//! record batch written as a Parquet file (atomically: temporary file, `fsync`, rename).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

/// Precision of every DECIMAL column: wide enough for any `i64` mantissa.
pub const DECIMAL_PRECISION: u8 = 38;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// UTC timestamp, nanoseconds (from ns since the epoch).
    Ts,
    /// Unsigned 64-bit.
    U64,
    /// Unsigned 32-bit.
    U32,
    /// Unsigned 8-bit.
    U8,
    /// Signed 64-bit.
    I64,
    /// Double (statistics and convenience columns).
    F64,
    /// Boolean.
    Bool,
    /// Text (enumeration names).
    Str,
    /// Exact decimal with this many decimals (mantissa in the row).
    Dec(u8),
}

/// One value of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    /// For [`ColType::Ts`], ns since the epoch.
    Ts(u64),
    /// For [`ColType::U64`].
    U64(u64),
    /// For [`ColType::U32`].
    U32(u32),
    /// For [`ColType::U8`].
    U8(u8),
    /// For [`ColType::I64`].
    I64(i64),
    /// For [`ColType::F64`].
    F64(f64),
    /// For [`ColType::Bool`].
    Bool(bool),
    /// For [`ColType::Str`].
    Str(&'static str),
    /// For [`ColType::Dec`]: the mantissa at the column's scale.
    Dec(i64),
}

#[derive(Debug)]
enum Col {
    Ts(Vec<i64>),
    U64(Vec<u64>),
    U32(Vec<u32>),
    U8(Vec<u8>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    Str(Vec<&'static str>),
    Dec(Vec<i128>, u8),
}

/// Buffered rows of one table file.
#[derive(Debug)]
pub struct Sheet {
    schema: Arc<Schema>,
    cols: Vec<Col>,
    rows: usize,
}

impl Sheet {
    /// An empty sheet with these columns.
    pub fn new(columns: &[(&str, ColType)]) -> Self {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, t)| {
                let dt = match t {
                    ColType::Ts => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                    ColType::U64 => DataType::UInt64,
                    ColType::U32 => DataType::UInt32,
                    ColType::U8 => DataType::UInt8,
                    ColType::I64 => DataType::Int64,
                    ColType::F64 => DataType::Float64,
                    ColType::Bool => DataType::Boolean,
                    ColType::Str => DataType::Utf8,
                    ColType::Dec(s) => DataType::Decimal128(DECIMAL_PRECISION, *s as i8),
                };
                Field::new(*n, dt, false)
            })
            .collect();
        let cols = columns
            .iter()
            .map(|(_, t)| match t {
                ColType::Ts => Col::Ts(Vec::new()),
                ColType::U64 => Col::U64(Vec::new()),
                ColType::U32 => Col::U32(Vec::new()),
                ColType::U8 => Col::U8(Vec::new()),
                ColType::I64 => Col::I64(Vec::new()),
                ColType::F64 => Col::F64(Vec::new()),
                ColType::Bool => Col::Bool(Vec::new()),
                ColType::Str => Col::Str(Vec::new()),
                ColType::Dec(s) => Col::Dec(Vec::new(), *s),
            })
            .collect();
        Sheet {
            schema: Arc::new(Schema::new(fields)),
            cols,
            rows: 0,
        }
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Append a row. The values must match the columns in number and type: the row builders of
    /// this module are the only callers, so a mismatch is a bug in them, caught by the export
    /// tests, and it is refused as a whole (no half-written row).
    pub fn push(&mut self, row: &[Val]) -> Result<(), String> {
        if row.len() != self.cols.len()
            || !row.iter().zip(&self.cols).all(|(v, c)| {
                matches!(
                    (v, c),
                    (Val::Ts(_), Col::Ts(_))
                        | (Val::U64(_), Col::U64(_))
                        | (Val::U32(_), Col::U32(_))
                        | (Val::U8(_), Col::U8(_))
                        | (Val::I64(_), Col::I64(_))
                        | (Val::F64(_), Col::F64(_))
                        | (Val::Bool(_), Col::Bool(_))
                        | (Val::Str(_), Col::Str(_))
                        | (Val::Dec(_), Col::Dec(..))
                )
            })
        {
            return Err(format!(
                "row {row:?} does not match schema {:?}",
                self.schema
            ));
        }
        for (v, c) in row.iter().zip(&mut self.cols) {
            match (v, c) {
                // Timestamps beyond year 2262 do not fit Arrow's i64 ns; saturate.
                (Val::Ts(x), Col::Ts(c)) => c.push(i64::try_from(*x).unwrap_or(i64::MAX)),
                (Val::U64(x), Col::U64(c)) => c.push(*x),
                (Val::U32(x), Col::U32(c)) => c.push(*x),
                (Val::U8(x), Col::U8(c)) => c.push(*x),
                (Val::I64(x), Col::I64(c)) => c.push(*x),
                (Val::F64(x), Col::F64(c)) => c.push(*x),
                (Val::Bool(x), Col::Bool(c)) => c.push(*x),
                (Val::Str(x), Col::Str(c)) => c.push(x),
                (Val::Dec(x), Col::Dec(c, _)) => c.push(i128::from(*x)),
                _ => {}
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The rows as one record batch (the sheet is emptied).
    pub fn take_batch(&mut self) -> Result<RecordBatch, ArrowError> {
        let cols = std::mem::take(&mut self.cols);
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.len());
        let mut fresh = Vec::with_capacity(cols.len());
        for c in cols {
            let (a, empty): (ArrayRef, Col) = match c {
                Col::Ts(v) => (
                    Arc::new(TimestampNanosecondArray::from(v).with_timezone("UTC")),
                    Col::Ts(Vec::new()),
                ),
                Col::U64(v) => (Arc::new(UInt64Array::from(v)), Col::U64(Vec::new())),
                Col::U32(v) => (Arc::new(UInt32Array::from(v)), Col::U32(Vec::new())),
                Col::U8(v) => (Arc::new(UInt8Array::from(v)), Col::U8(Vec::new())),
                Col::I64(v) => (Arc::new(Int64Array::from(v)), Col::I64(Vec::new())),
                Col::F64(v) => (Arc::new(Float64Array::from(v)), Col::F64(Vec::new())),
                Col::Bool(v) => (Arc::new(BooleanArray::from(v)), Col::Bool(Vec::new())),
                Col::Str(v) => (Arc::new(StringArray::from(v)), Col::Str(Vec::new())),
                Col::Dec(v, s) => (
                    Arc::new(
                        Decimal128Array::from(v)
                            .with_precision_and_scale(DECIMAL_PRECISION, s as i8)?,
                    ),
                    Col::Dec(Vec::new(), s),
                ),
            };
            arrays.push(a);
            fresh.push(empty);
        }
        self.cols = fresh;
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

/// Write `batch` to `path` as Parquet (Snappy), through a temporary file that is `fsync`ed and
/// renamed, so a reader or a crash never sees a partial file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    }
    let tmp = path.with_extension("parquet.tmp");
    let file = File::create(&tmp).map_err(|e| err(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| err(&e))?;
    w.write(batch).map_err(|e| err(&e))?;
    let file = w.into_inner().map_err(|e| err(&e))?;
    file.sync_all().map_err(|e| err(&e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| err(&e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(&e))?;
    }
    Ok(())
}
