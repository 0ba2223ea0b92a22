//! Start-up recovery: the orders of earlier runs, as start-up reconciliation resolved them,
//! put back into the gateway before it trades.
//!
//! Why: after a crash the gateway journal ends wherever the process died. An order may have
//! been in flight (journaled `new`/`submitted`) and then filled at the venue, or been filled or
//! canceled while no engine listened. Reconciliation (cold path, `coldpath::reconcile`) asks
//! the venue about every order the journal holds open; [`GatewayStage::recover`] then applies
//! the venue's answer through the same state machine as a live `GET order` response, so the
//! gateway journal records the venue's final state and the fills (the next start finds the
//! order closed, and whatever rebuilds positions from the journal sees the fills), the
//! strategy receives the execution events, and orders still open at the venue are tracked in
//! the order table (their later fills arrive on the user stream).
//!
//! [`JournaledOrder`] is the fold of one order's `OrderUpdate` records: the journal's last word
//! on it, which is what reconciliation compares with the venue.

use super::{GatewayStage, OrderState, OrderUpdate, UpdateCause, ERR_NO_SUCH_ORDER};
use crate::event::{ExecEvent, ExecKind, OrderIntent, OrderType, Side, Stamps, TimeInForce};
use crate::fixed::{Price, Qty};
use crate::instrument::{InstrumentId, InstrumentRef};
use crate::venue::binance::orders::{decode_order_response, for_each_field};

use super::limits::wall_ms;
use super::state::OrderAlert;

/// One order as its gateway journal left it: the fold of its `OrderUpdate` records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournaledOrder {
    /// The intent's client order id.
    pub client_order_id: u64,
    /// Instrument.
    pub instrument: InstrumentId,
    /// State after the last transition.
    pub state: OrderState,
    /// Venue order id, 0 if never known.
    pub venue_order_id: u64,
    /// The order's quantity.
    pub orig_qty: Qty,
    /// Highest cumulative fill journaled.
    pub cum_qty: Qty,
    /// Scale of the quantities.
    pub qty_scale: u8,
    /// Wall-clock time of the last record, ns since the epoch.
    pub last_ns: u64,
}

impl JournaledOrder {
    /// The order as its first record describes it; `None` for a record that carries no order
    /// state (an alert about a report for an id the gateway did not know).
    pub fn from_update(u: &OrderUpdate) -> Option<JournaledOrder> {
        (u.to != OrderState::Unknown && u.client_order_id != 0).then_some(JournaledOrder {
            client_order_id: u.client_order_id,
            instrument: u.instrument,
            state: u.to,
            venue_order_id: u.venue_order_id,
            orig_qty: u.orig_qty,
            cum_qty: u.cum_qty,
            qty_scale: u.qty_scale,
            last_ns: u.time_ns,
        })
    }

    /// Folds in a later record of the same order: its state (an alert repeats the current
    /// one), the venue id once known and the highest cumulative fill. Records without an order
    /// state are skipped, as in [`from_update`](Self::from_update).
    pub fn apply(&mut self, u: &OrderUpdate) {
        if u.to == OrderState::Unknown || u.client_order_id != self.client_order_id {
            return;
        }
        self.state = u.to;
        if u.venue_order_id != 0 {
            self.venue_order_id = u.venue_order_id;
        }
        self.cum_qty = Qty(self.cum_qty.0.max(u.cum_qty.0));
        self.last_ns = self.last_ns.max(u.time_ns);
    }
}

/// What the venue said about an order at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VenueAnswer<'a> {
    /// The order as `GET order` or `openOrders` shows it (`order`: one JSON object), with its
    /// trades when the venue listed them (`trades`: the JSON array of spot `myTrades` or USD-M
    /// `userTrades` for this order, oldest first; empty if not asked).
    Known {
        /// The order object.
        order: &'a [u8],
        /// The order's trade list, or empty.
        trades: &'a [u8],
    },
    /// The venue does not know the order (`-2013`): it never arrived.
    Unknown,
}

/// Why an order of an earlier run could not be put back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The venue's answer is not an order object the gateway can read.
    #[error("order {cid:016x}: the venue's answer does not decode ({why})")]
    Malformed {
        /// Client order id.
        cid: u64,
        /// What is wrong.
        why: String,
    },
    /// The order's symbol is not one this gateway trades.
    #[error("order {cid:016x}: symbol {symbol} is not traded by this gateway")]
    UnknownSymbol {
        /// Client order id.
        cid: u64,
        /// The symbol the venue reported.
        symbol: String,
    },
    /// The journal's quantities are at another scale than the instrument's now.
    #[error(
        "order {cid:016x}: journaled at quantity scale {journaled}, the instrument's is {now}"
    )]
    Scale {
        /// Client order id.
        cid: u64,
        /// Scale in the journal.
        journaled: u8,
        /// The instrument's scale.
        now: u8,
    },
    /// Every slot of the order table holds an open order.
    #[error("order {cid:016x}: the order table is full")]
    TableFull {
        /// Client order id.
        cid: u64,
    },
}

impl GatewayStage {
    /// Applies start-up reconciliation's answer for order `client_order_id` of an earlier run
    /// before the stage runs (cold path: it may allocate). `journaled` is the journal's last
    /// word on it (`None` if the journal never had it), `venue` what the venue said. Returns
    /// the order's state afterwards.
    ///
    /// * The venue knows it: the order is put into the table at its journaled state and
    ///   cumulative fill (an order the journal has closed or never had starts over from
    ///   `new`), then the venue's answer is applied exactly like a `GET order` response
    ///   (cause `query`): acknowledgement, the fills up to the venue's executed quantity (one
    ///   fill at the average price for what the journal lacks, as the answer has no trades),
    ///   and its terminal state. Each transition is journaled and published as an
    ///   execution event. An order still open at the venue stays in the table.
    /// * The venue does not know it: an order the journal holds open is closed as rejected
    ///   with the venue's `-2013` (journaled, cause `query`; no execution event, as nothing
    ///   happened at the venue and no strategy of this run placed it).
    pub fn recover(
        &mut self,
        client_order_id: u64,
        journaled: Option<&JournaledOrder>,
        venue: VenueAnswer<'_>,
    ) -> Result<OrderState, RecoverError> {
        let cid = client_order_id;
        let (body, trades) = match venue {
            VenueAnswer::Unknown => return Ok(self.close_unknown(journaled)),
            VenueAnswer::Known { order, trades } => (order, trades),
        };
        let malformed = |why: String| RecoverError::Malformed { cid, why };
        let (mut symbol, mut side, mut text): (&[u8], Option<Side>, &[u8]) = (b"", None, b"");
        for_each_field(body, |k, v| match k {
            b"symbol" => symbol = v.text().unwrap_or(b""),
            b"clientOrderId" => text = v.text().unwrap_or(b""),
            b"side" => {
                side = match v.text() {
                    Some(b"BUY") => Some(Side::Buy),
                    Some(b"SELL") => Some(Side::Sell),
                    _ => None,
                }
            }
            _ => {}
        })
        .map_err(|e| malformed(e.to_string()))?;
        if super::parse_client_id(&self.core.prefix, text) != Some(cid) {
            return Err(malformed(format!(
                "clientOrderId {:?} is not this order's",
                String::from_utf8_lossy(text)
            )));
        }
        let side = side.ok_or_else(|| malformed("no side".into()))?;
        let sym = *self
            .core
            .symbols
            .iter()
            .flatten()
            .find(|s| s.bytes() == symbol)
            .ok_or_else(|| RecoverError::UnknownSymbol {
                cid,
                symbol: String::from_utf8_lossy(symbol).into_owned(),
            })?;
        let (ps, qs) = (sym.inst.price_scale, sym.inst.qty_scale);
        if let Some(j) = journaled.filter(|j| j.qty_scale != qs) {
            return Err(RecoverError::Scale {
                cid,
                journaled: j.qty_scale,
                now: qs,
            });
        }
        // The trade list gives each fill the journal lacks with its own price, fee, trade id
        // and maker flag; without one, `cum_quote` (spot's `cummulativeQuoteQty`, USD-M's
        // `cumQuote`) gives one fill at the average price, and no fee.
        let mut r = decode_order_response(body, ps, qs).map_err(|e| malformed(e.to_string()))?;
        if r.fills.is_empty() {
            r.fills = trades;
        }
        let qty = match journaled {
            Some(j) if r.orig_qty.0 == 0 => j.orig_qty,
            _ => r.orig_qty,
        };
        // Type, time in force and price only matter for sending the order, and a recovered
        // order is never sent again: it is known to the venue.
        let intent = OrderIntent::new_order(
            sym.inst,
            side,
            OrderType::Limit,
            TimeInForce::Gtc,
            Price::ZERO,
            qty,
            cid,
        );
        let core = &mut self.core;
        let slot = match core.table.find(cid) {
            Some(s) => s,
            None => core
                .table
                .insert(intent)
                .ok_or(RecoverError::TableFull { cid })?,
        };
        let open = journaled.filter(|j| !j.state.is_terminal());
        if let Some(o) = core.table.get_mut(slot) {
            if let Some(j) = journaled {
                o.cum_qty = j.cum_qty;
                o.venue_order_id = j.venue_order_id;
            }
            if let Some(j) = open {
                o.state = j.state;
            }
        }
        if open.is_none() {
            // The journal has it closed (or not at all) and the venue has it: the venue wins,
            // and the journal says so before the venue's account follows.
            let from = journaled.map_or(OrderState::Unknown, |j| j.state);
            core.journal_update(
                slot,
                from,
                OrderState::New,
                UpdateCause::Query,
                OrderAlert::None,
                0,
            );
        }
        core.apply_response(slot, &r, UpdateCause::Query);
        Ok(core
            .table
            .get(slot)
            .map_or(OrderState::Unknown, |o| o.state))
    }

    /// Journals and publishes a fill of no order (client order id 0, trade id 0) of `qty` on
    /// `side` at `px`: start-up reconciliation's correction where a venue that states
    /// positions (USD-M) holds another position in `inst` than the journal's fills give (see
    /// `risk::OpenPosition::steps_to`). Journaled like any fill, so the next start's fold of
    /// the journal agrees with the venue; published, so the strategy's position follows.
    pub fn adjust_position(&mut self, inst: InstrumentRef, side: Side, qty: Qty, px: Price) {
        let stamps = Stamps::new(wall_ms() * 1_000_000, self.core.tsc.raw());
        let ev = ExecEvent::new(inst, ExecKind::Fill, side, 0, 0, stamps).with_fill(
            px,
            qty,
            qty,
            Qty::ZERO,
            0,
        );
        self.core.emit(ev);
    }

    /// Closes an order the venue does not know.
    fn close_unknown(&mut self, journaled: Option<&JournaledOrder>) -> OrderState {
        let Some(j) = journaled else {
            return OrderState::Unknown;
        };
        if j.state.is_terminal() {
            return j.state;
        }
        let u = OrderUpdate {
            client_order_id: j.client_order_id,
            venue_order_id: j.venue_order_id,
            cum_qty: j.cum_qty,
            orig_qty: j.orig_qty,
            time_ns: wall_ms() * 1_000_000,
            venue_error: ERR_NO_SUCH_ORDER,
            instrument: j.instrument,
            from: j.state,
            to: OrderState::Rejected,
            cause: UpdateCause::Query,
            alert: OrderAlert::None,
            qty_scale: j.qty_scale,
            reserved: [0; 3],
        };
        self.core.write_update(&u);
        OrderState::Rejected
    }
}
