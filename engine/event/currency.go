package event

import "strings"

// CurrencyExponent returns the number of minor-unit digits of an ISO 4217
// currency code (2 for USD, 0 for JPY, 3 for BHD) and whether the code is a
// known active currency. One table lookup: every scoring asks.
func CurrencyExponent(code string) (int, bool) {
	if len(code) != 3 || !upperAlpha(code) {
		return 0, false
	}
	if e := currencyTable[currencyIndex(code)]; e != 0 {
		return int(e - 1), true
	}
	return 2, false
}

// currencyTable holds, per three-letter code, its exponent + 1 (0: not an
// active currency), built from the lists below.
var currencyTable = func() (t [26 * 26 * 26]uint8) {
	for _, code := range strings.Fields(twoDigitCurrencies) {
		t[currencyIndex(code)] = 2 + 1
	}
	for code, e := range exponentExceptions {
		t[currencyIndex(code)] = uint8(e) + 1
	}
	return t
}()

func currencyIndex(code string) int {
	return (int(code[0]-'A')*26+int(code[1]-'A'))*26 + int(code[2]-'A')
}

// MajorUnits converts an amount in minor units to major units (1099 USD →
// 10.99). An unknown currency is treated as having two decimals.
func MajorUnits(amount int64, currency string) float64 {
	e, _ := CurrencyExponent(currency)
	return float64(amount) / pow10[e]
}

var pow10 = [...]float64{1, 10, 100, 1000, 10000}

// exponentExceptions are the ISO 4217 active codes whose minor unit is not 2.
var exponentExceptions = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0,
	"KRW": 0, "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0,
	"XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
}

// twoDigitCurrencies are the ISO 4217 active codes with two decimals,
// space-separated.
const twoDigitCurrencies = " AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG ZAR ZMW ZWG ZWL "
