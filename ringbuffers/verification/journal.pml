/*
 * journal.pml -- the append / commit / tail / crash / recover protocol of ringbuffers::journal.
 *
 * See README.md next to this file for how each part maps to the Rust code. In short:
 *
 *   journal:   segment A (NA record slots, then its end-of-segment slot) followed by segment B
 *              (NB record slots). A slot is a record: commit word, two payload words, seq, crc.
 *   Writer:    the Appender. Per record: payload words (either order), seq, crc, then the commit
 *              word (the Release store). Rolls over to B by writing B's header, then A's
 *              end-of-segment marker. It can crash (stop) at every step; whatever it stored
 *              stays (kill -9: the page cache survives the process).
 *   TORN:      compile with -DTORN for power loss instead of kill -9: at the crash, a page of
 *              the record in progress, or of the last record not yet flushed, may be lost, i.e.
 *              a payload word becomes garbage while the commit word may stay set (a "torn
 *              commit" that only the checksum can reveal). The Writer may flush (msync) after an
 *              append; flushed records cannot be torn.
 *   Tailer:    follows the journal; accepts a record only after seeing its commit word and
 *              checking crc and seq, like Tailer::next. In kill -9 mode it keeps running across
 *              the crash and the recovery (a tailer in another process); with TORN it dies with
 *              the machine. A second, fresh tailer reads everything after recovery.
 *   Recovery:  Appender::open after the crash: scan for the last intact record, seal segment A
 *              if the writer died between B's header and A's marker (or abandon an empty B if
 *              A lost its tail), zero everything after the last intact record, then append the
 *              next record.
 *
 * The checksum is modelled as "the crc word is CRC(seq) = seq + 1 and both payload words equal
 * it"; garbage (BAD) and zeros never check out, i.e. the model assumes CRC32C detects a torn
 * record. Given that assumption, a returned record is exactly what was written (P1); what the
 * model really checks is the ordering: commit word last, marker after the next header, and
 * what recovery keeps, seals, abandons and zeroes.
 *
 * Properties (assertions):
 *   P1 a tailer never returns an uncommitted or torn record (accepted => exactly what was written)
 *   P2 a committed record always verifies: no tailer ever reports corruption, neither while
 *      following the writer nor after recovery (a live tailer dies with the machine on power loss)
 *   P3 recovery never keeps an uncommitted or torn record (kept records intact, tail zeroed)
 *   P4 kill -9: recovery never drops a committed record, nor one a tailer already returned;
 *      power loss: recovery never drops a flushed record
 *   P5 a tailer that sees an end-of-segment marker finds the next segment's header complete
 *   P6 appending after recovery continues with the next sequence number, readable by tailers
 *
 * Mutants, each of which check-promela.sh requires to FAIL (so the assertions are known to be
 * able to fail):
 *   -DBUG_COMMIT_FIRST  the writer stores the commit word before the payload
 *   -DBUG_MARKER_FIRST  the writer stores A's end-of-segment marker before B's header
 *   -DBUG_NO_ZERO       recovery clears commit words but leaves the torn bytes behind
 */

#define NA      2                   /* record slots in segment A */
#define NB      2                   /* record slots in segment B */
#define EOSLOT  NA                  /* A's end-of-segment slot */
#define NSLOTS  (NA + 1 + NB)
#define NREC    3                   /* records the writer appends (the last one rolls over) */

#define EMPTY     0
#define COMMITTED 1
#define EOS       2
#define BAD       9                 /* garbage left by a lost page */

#define VAL(s)    ((s) + 1)         /* payload of record s (never 0, never BAD) */
#define SLOT(s)   ((s) < NA -> (s) : (s) + 1)

/* The reader's checks (Tailer::next, recovery's scan): committed, checksum over seq and payload
   matches (modelled: the crc word equals CRC(seq) = seq + 1 and both payload words equal it),
   and the sequence number is the expected one. */
#define CHECKS_OUT(c, r0, r1, rc, rs, s) \
    ((c) == COMMITTED && (r0) == (rc) && (r1) == (rc) && (rc) == (rs) + 1 && (rs) == (s))
#define INTACT(p, s) CHECKS_OUT(commit[p], w0[p], w1[p], crc[p], sq[p], s)

/* Power loss takes the live tailer down with the machine; kill -9 only kills the writer. */
#ifdef TORN
#define DIES_WITH_WRITER (crashed && !fresh)
#else
#define DIES_WITH_WRITER false
#endif

byte commit[NSLOTS];
byte w0[NSLOTS];
byte w1[NSLOTS];
byte crc[NSLOTS];
byte sq[NSLOTS];
bool hdrB;          /* segment B's header has been written */
byte firstB;        /* first sequence number in B's header */

bool crashed;       /* the writer stopped */
byte committed;     /* records whose commit word was stored */
byte acked;         /* records append() returned for */
byte flushed;       /* records made durable by flush() */
byte seen;          /* records the live tailer returned */
bool recovered;     /* recovery finished scanning and truncating */
byte kept;          /* records recovery kept */
bool refused;       /* recovery refused to open (reports Corrupt instead of guessing) */

#define CRASH_POINT if :: skip :: goto crash fi

active proctype Writer() {
    byte s = 0;
    byte p = 0;
    do
    :: s == NREC -> break
    :: s < NREC ->
        if
        :: s == NA ->                       /* A is full: roll over */
#ifdef BUG_MARKER_FIRST
            CRASH_POINT;
            commit[EOSLOT] = EOS;
            CRASH_POINT;
            atomic { firstB = s; hdrB = true }
#else
            CRASH_POINT;
            atomic { firstB = s; hdrB = true }  /* header of B, written before the marker */
            CRASH_POINT;
            commit[EOSLOT] = EOS            /* Release: publishes A's end and B's header */
#endif
        :: else -> skip
        fi;
        p = SLOT(s);
        CRASH_POINT;
#ifdef BUG_COMMIT_FIRST
        atomic { commit[p] = COMMITTED; committed++ };
        CRASH_POINT;
#endif
        if                                  /* payload: plain stores, any order */
        :: w0[p] = VAL(s); CRASH_POINT; w1[p] = VAL(s)
        :: w1[p] = VAL(s); CRASH_POINT; w0[p] = VAL(s)
        fi;
        CRASH_POINT;
        sq[p] = s;
        CRASH_POINT;
        crc[p] = VAL(s);
        CRASH_POINT;
#ifndef BUG_COMMIT_FIRST
        atomic { commit[p] = COMMITTED; committed++ };  /* the Release store of the commit word */
        CRASH_POINT;
#endif
        acked++;                            /* append() returned: the parent was told */
        s++;
        if
        :: flushed = s                      /* flush(): msync */
        :: skip
        fi
    od;
crash:
    atomic {                                /* the machine (TORN) or the process stops */
#ifdef TORN
        if
        :: skip
        :: s < NREC -> w1[SLOT(s)] = BAD                        /* page of the record in progress */
        :: s > 0 && s - 1 >= flushed -> w1[SLOT(s - 1)] = BAD   /* page of an unflushed record */
        fi;
#endif
        crashed = true
    }
}

/* Follows the journal like Tailer::next. fresh = 0: the live tailer; 1: opened after recovery. */
proctype Tailer(bit fresh) {
    byte s = 0;
    byte p = 0;
    byte c, r0, r1, rc, rs;
    if
    :: fresh ->
end_open:
        (recovered)                         /* opened after recovery (never, if it refused) */
    :: else -> skip
    fi;
    {
        do
        :: p == NSLOTS -> break
        :: p == EOSLOT ->
end_eos:
            (commit[EOSLOT] == EOS);
            assert(hdrB && firstB == s);                           /* P5 */
            p++
        :: p != EOSLOT && p < NSLOTS ->
end_rec:
            (commit[p] != EMPTY);           /* Acquire load of the commit word */
            c = commit[p];
            r0 = w0[p];
            r1 = w1[p];
            rs = sq[p];
            rc = crc[p];
            if
            :: CHECKS_OUT(c, r0, r1, rc, rs, s) ->
                /* P1: only committed records are returned, and exactly as written */
                assert(s < committed || recovered && s == kept);
                assert(r0 == VAL(s) && r1 == VAL(s));
#ifndef TORN
                assert(!recovered || s <= kept);                   /* P4: not dropped later */
#endif
                if :: !fresh -> seen++ :: else -> skip fi;
                s++;
                p++
            :: else ->
                /* Tailer::next would report Corrupt (and return no data). With a correct
                   protocol that never happens: not on a live journal, not after recovery. */
                assert(false);                                     /* P2 */
                break
            fi
        od
    } unless {
        DIES_WITH_WRITER
    }
}

active proctype Recovery() {
    byte s = 0;
    byte p = 0;
    byte i;
    (crashed);
    /* scan: the last intact record */
    do
    :: p == NSLOTS -> break
    :: p == EOSLOT ->
        if
        :: commit[EOSLOT] == EOS ->
            assert(hdrB && firstB == s);
            p++
        :: commit[EOSLOT] != EOS && hdrB && firstB == s ->
            commit[EOSLOT] = EOS;           /* sealed_segment: died between header and marker */
            p++
        :: commit[EOSLOT] != EOS && hdrB && firstB != s ->
            /* A lost records after B was started (power loss only) */
            if
            :: INTACT(EOSLOT + 1, firstB) -> refused = true; goto finish
            :: else -> hdrB = false; firstB = 0     /* abandon B (delete the file) */
            fi;
            break
        :: commit[EOSLOT] != EOS && !hdrB -> break
        fi
    :: p != EOSLOT && p < NSLOTS ->
        if
        :: INTACT(p, s) -> s++; p++
        :: else -> break
        fi
    od;
    /* truncate: zero everything after the last intact record (commit word first, as
       write_bytes does going forward) */
    i = p;
    do
    :: i < NSLOTS ->
        if
        :: i == EOSLOT && commit[EOSLOT] == EOS -> skip   /* a valid marker stays */
#ifdef BUG_NO_ZERO
        :: else -> commit[i] = EMPTY                      /* forgets the torn bytes */
#else
        :: else ->
            commit[i] = EMPTY; w0[i] = 0; w1[i] = 0; sq[i] = 0; crc[i] = 0
#endif
        fi;
        i++
    :: else -> break
    od;
    atomic { kept = s; recovered = true };

    assert(kept <= committed);                                 /* P3 */
#ifndef TORN
    assert(kept == committed);                                 /* P4 */
    assert(kept >= acked);                                     /* P4 */
    assert(seen <= kept);                                      /* P4 */
#else
    assert(kept >= flushed);                                   /* P4 */
#endif
    i = 0;
    do
    :: i < kept -> assert(INTACT(SLOT(i), i) && w0[SLOT(i)] == VAL(i)); i++    /* P3 */
    :: else -> break
    od;
    i = p;
    do
    :: i < NSLOTS ->
        assert(i == EOSLOT && commit[i] == EOS ||
               commit[i] == EMPTY && w0[i] == 0 && w1[i] == 0 && sq[i] == 0 && crc[i] == 0); /* P3 */
        i++
    :: else -> break
    od;

    /* P6: appending continues after the last kept record, with seq = kept */
    if
    :: p == EOSLOT && commit[EOSLOT] != EOS ->
        atomic { firstB = kept; hdrB = true };
        commit[EOSLOT] = EOS;
        p++
    :: else -> skip
    fi;
    if
    :: p < NSLOTS && p != EOSLOT ->
        w0[p] = VAL(kept); w1[p] = VAL(kept); sq[p] = kept; crc[p] = VAL(kept);
        commit[p] = COMMITTED
    :: else -> skip
    fi;
finish:
#ifndef TORN
    assert(!refused);
#endif
    skip
}

init {
    run Tailer(0);
    run Tailer(1)
}
