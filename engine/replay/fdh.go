package replay

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// FDHCurrency is the currency FDH amounts are read in (the dataset has
// one, unnamed): TX_AMOUNT 57.16 becomes 5716 EUR cents.
const FDHCurrency = "EUR"

// ReadFDH reads the Fraud Detection Handbook simulated transactions
// layout (TRANSACTION_ID, TX_UNIX, CUSTOMER_ID, TERMINAL_ID, TX_AMOUNT,
// TX_FRAUD, TX_FRAUD_SCENARIO; other columns are ignored): the customer
// becomes the card token and the account ("c123"), the terminal the
// merchant ("t456"), TX_FRAUD the label (without known_at: the replay's
// label delay applies). TX_FRAUD_SCENARIO only names the report's group
// ("scenario_0".."scenario_3"); it never enters the event.
func ReadFDH(r io.Reader) (*Dataset, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("fdh header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	need := []string{"TRANSACTION_ID", "TX_UNIX", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "TX_FRAUD"}
	for _, h := range need {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("fdh: no %s column", h)
		}
	}
	scen, hasScen := col["TX_FRAUD_SCENARIO"]
	rows, err := readRows(cr, "fdh")
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Transactions: make([]Transaction, len(rows)), Labels: make([]Label, len(rows))}
	cID, cT, cCust, cTerm, cAmt, cFraud := col["TRANSACTION_ID"], col["TX_UNIX"], col["CUSTOMER_ID"], col["TERMINAL_ID"], col["TX_AMOUNT"], col["TX_FRAUD"]
	now := time.Now()
	events := make([]event.Event, len(rows))
	err = parallel(len(rows), func(i int) error {
		row := rows[i]
		sec, err := strconv.ParseInt(row[cT], 10, 64)
		if err != nil || sec <= 0 || sec > math.MaxUint32 {
			return fmt.Errorf("fdh line %d: TX_UNIX %s", i+2, show(row[cT]))
		}
		x, err := strconv.ParseFloat(row[cAmt], 64)
		if err != nil || x < 0 || x > 1e12 {
			return fmt.Errorf("fdh line %d: TX_AMOUNT %s", i+2, show(row[cAmt]))
		}
		ev := &events[i]
		*ev = event.Event{ID: row[cID], Time: time.Unix(sec, 0).UTC(), Amount: int64(math.Round(x * 100)), Currency: FDHCurrency,
			Card: event.Card{Token: "c" + row[cCust]}, Account: event.Account{ID: "c" + row[cCust]},
			Merchant: event.Merchant{ID: "t" + row[cTerm]}}
		if err := ev.Validate(now); err != nil {
			return fmt.Errorf("fdh line %d: %w", i+2, err)
		}
		fraud, err := ParseLabel(row[cFraud])
		if err != nil {
			return fmt.Errorf("fdh line %d: TX_FRAUD: %w", i+2, err)
		}
		ds.Transactions[i] = Transaction{Event: ev}
		if hasScen {
			ds.Transactions[i].Group = "scenario_" + row[scen]
		}
		ds.Labels[i] = Label{EventID: ev.ID, Fraud: fraud}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("fdh: no transactions")
	}
	return ds, nil
}
