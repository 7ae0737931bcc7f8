package rules

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteJUnit writes test results as JUnit XML, one testsuite per test
// file, for CI systems to read.
func WriteJUnit(w io.Writer, results []TestResult) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Time      string   `xml:"time,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
	}
	type testsuite struct {
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Time     string     `xml:"time,attr"`
		Cases    []testcase `xml:"testcase"`
		duration time.Duration
	}
	type testsuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []*testsuite `xml:"testsuite"`
	}
	secs := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
	out := testsuites{Name: "vigil rules"}
	byFile := map[string]*testsuite{}
	var total time.Duration
	for _, r := range results {
		s := byFile[r.File]
		if s == nil {
			s = &testsuite{Name: r.File}
			byFile[r.File] = s
			out.Suites = append(out.Suites, s)
		}
		c := testcase{Name: r.Name, Classname: r.File, Time: secs(r.Duration)}
		switch {
		case r.Skipped != "":
			c.Skipped = &skipped{Message: r.Skipped}
			s.Skipped++
			out.Skipped++
		case len(r.Failures) > 0:
			c.Failure = &failure{Message: r.Failures[0], Text: strings.Join(r.Failures, "\n")}
			s.Failures++
			out.Failures++
		}
		s.Tests++
		out.Tests++
		s.duration += r.Duration
		total += r.Duration
		s.Cases = append(s.Cases, c)
	}
	for _, s := range out.Suites {
		s.Time = secs(s.duration)
	}
	out.Time = secs(total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
