package plugin

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// logger writes leveled lines to the log file (log_file) and to stderr. stdout is reserved for the CNI result.
type logger struct {
	level  int
	out    []io.Writer
	prefix string
	file   *os.File
}

var levels = map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}

func newLogger(level, file string, stderr io.Writer) *logger {
	l := &logger{level: levels[level], out: []io.Writer{stderr}}
	if lv, ok := levels[level]; ok {
		l.level = lv
	} else {
		l.level = levels["info"]
	}
	if file != "" {
		f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			fmt.Fprintf(stderr, "asm-cni: cannot open log_file %s: %v (logging to stderr only)\n", file, err)
		} else {
			l.file = f
			l.out = append(l.out, f)
		}
	}
	return l
}

func (l *logger) with(prefix string) { l.prefix = prefix }

func (l *logger) close() {
	if l.file != nil {
		_ = l.file.Close()
	}
}

func (l *logger) log(level, format string, a ...any) {
	if levels[level] < l.level {
		return
	}
	msg := fmt.Sprintf(format, a...)
	line := fmt.Sprintf("%s %-5s asm-cni %s%s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.ToUpper(level), l.prefix, msg)
	for _, w := range l.out {
		_, _ = io.WriteString(w, line)
	}
}

func (l *logger) Debugf(format string, a ...any) { l.log("debug", format, a...) }
func (l *logger) Infof(format string, a ...any)  { l.log("info", format, a...) }
func (l *logger) Warnf(format string, a ...any)  { l.log("warn", format, a...) }
func (l *logger) Errorf(format string, a ...any) { l.log("error", format, a...) }
