package harness

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ocifs/ocifs/bench/gen"
)

// Result is everything one run measured, and how.
type Result struct {
	Started    time.Time         `json:"started"`
	Seconds    float64           `json:"seconds"`
	Smoke      bool              `json:"smoke"`
	Commit     string            `json:"commit"`
	Machine    Machine           `json:"machine"`
	Tools      map[string]string `json:"tools"`
	Settings   Settings          `json:"settings"`
	Scales     []ScaleInfo       `json:"scales"` // the main scale first
	Paths      [][2]string       `json:"paths"`  // symbol, meaning: for the commands
	Rows       []*Row            `json:"rows"`
	Notes      []string          `json:"notes"`
	Phases     []Phase           `json:"phases"`
	DropCaches bool              `json:"drop_caches"`
	Reclaim    Reclaim           `json:"reclaim"`
	Ocifs      Availability      `json:"ocifs"`
	GoBench    string            `json:"gobench,omitempty"` // the packages' go test -bench output
}

// Reclaim is the kernel's proactive reclaim during the run.
type Reclaim struct {
	Found  []string `json:"found"`  // what was running when the run started
	Paused int      `json:"paused"` // how many of them the run paused
	Kept   bool     `json:"kept"`   // -keep-reclaim: left running on purpose
}

// Settings are the run's options, as reported.
type Settings struct {
	Seed     uint64   `json:"seed"`
	Scale    string   `json:"scale"`
	Scaling  []string `json:"scaling"`
	Reps     int      `json:"reps"`
	RepsSlow int      `json:"reps_slow"`
	Slow     string   `json:"slow"`
	Limit    string   `json:"limit"`
	Archive  string   `json:"archivemount_limit"`
	Random   int      `json:"random"`
}

// ScaleInfo describes one generated image.
type ScaleInfo struct {
	Scale          string     `json:"scale"`
	Key            string     `json:"key"`
	Totals         gen.Counts `json:"totals"`
	Layers         int        `json:"layers"`
	TarBytes       int64      `json:"tar_bytes"`
	GzipBytes      int64      `json:"gzip_bytes"`
	ZstdBytes      int64      `json:"zstd_bytes"`
	Archive        int        `json:"archive_layer"` // 1-based: the layer archivemount serves
	ArchiveMiB     float64    `json:"archive_layer_mib"`
	ArchiveEntries int        `json:"archive_layer_entries"`
	GenSecs        float64    `json:"generation_seconds"`
}

// Phase is how long a part of the run took.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Availability says which ocifs commands the binary had.
type Availability struct {
	Mount  bool `json:"mount"`
	Index  bool `json:"index"`
	Export bool `json:"export"`
}

// env is one generated image with its work directory.
type env struct {
	r     *runner
	cfg   *Config
	res   *Result
	meta  *gen.Meta
	label string
	work  string
	vars  map[string]string
}

// Run runs the selected scenarios. It returns what it measured even
// when it stops early (the error then says why).
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	start := time.Now()
	res := &Result{
		Started: start,
		Smoke:   cfg.Smoke,
		Settings: Settings{
			Seed: cfg.Seed, Scale: cfg.Scale, Scaling: cfg.Scaling, Reps: cfg.Reps, RepsSlow: cfg.RepsSlow,
			Slow: cfg.Slow.String(), Limit: cfg.Limit.String(), Archive: cfg.Archive.String(), Random: cfg.Random,
		},
	}
	r := &runner{cfg: cfg, log: cfg.Log}
	work := filepath.Join(cfg.Out, "work")
	if err := gen.FenceGoTool(cfg.Out); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	// Mounts left by an interrupted run would make every number wrong.
	for _, mp := range mountPoints(work) {
		if err := unmount(ctx, mp, ""); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, mp := range mountPoints(work) {
			if err := unmount(context.WithoutCancel(ctx), mp, ""); err != nil {
				cfg.Log.Error("cleanup", "err", err)
			}
		}
	}()

	res.Machine = machine(ctx, cfg.Out)
	res.Tools = toolVersions(ctx, cfg.Ocifs)
	res.Commit = firstLine(shellQuiet(ctx, "git describe --always --dirty 2>/dev/null || git rev-parse --short HEAD"))
	res.DropCaches = dropCaches() == nil
	if !res.DropCaches {
		res.Notes = append(res.Notes, "The kernel caches could not be dropped (not root?): \"cold\" rows only had a fresh mount.")
	}
	reclaim := proactiveReclaim(damonKdamonds)
	res.Reclaim = Reclaim{Kept: cfg.KeepReclaim}
	for _, rc := range reclaim {
		res.Reclaim.Found = append(res.Reclaim.Found, rc.What)
	}
	if !cfg.KeepReclaim {
		paused, resume := pauseReclaim(reclaim)
		res.Reclaim.Paused = len(paused)
		defer func() {
			if err := resume(); err != nil {
				cfg.Log.Error("cleanup", "err", err)
			}
		}()
	}
	res.Ocifs = Availability{
		Mount:  ocifsHas(ctx, cfg.Ocifs, "mount"),
		Index:  ocifsHas(ctx, cfg.Ocifs, "index"),
		Export: ocifsHas(ctx, cfg.Ocifs, "export"),
	}
	if !res.Ocifs.Mount {
		res.Notes = append(res.Notes, "This ocifs build has no working `ocifs mount`: its rows are empty.")
	}
	for _, tool := range []string{"umoci", "fuse-overlayfs", "archivemount", "zstd", "gzip", "tar"} {
		if !have(tool) {
			res.Notes = append(res.Notes, fmt.Sprintf("%s is not installed: its rows are empty.", tool))
		}
	}
	phase := func(name string, t0 time.Time) {
		res.Phases = append(res.Phases, Phase{name, time.Since(t0).Seconds()})
	}
	finish := func(err error) (*Result, error) {
		if cfg.GoBench != "" {
			if b, rerr := os.ReadFile(cfg.GoBench); rerr == nil {
				res.GoBench = string(b)
			}
		}
		res.Rows = r.rows
		res.Seconds = time.Since(start).Seconds()
		return res, err
	}

	// Every image first: generating the 300k one takes minutes the
	// first time, and the budget shares below are for measuring.
	t0 := time.Now()
	e, err := newEnv(ctx, r, cfg, res, cfg.Scale)
	if err != nil {
		return finish(err)
	}
	envs := map[string]*env{cfg.Scale: e}
	if cfg.Only == nil || cfg.Only["scaling"] {
		for _, s := range cfg.Scaling {
			if envs[s] != nil {
				continue
			}
			if envs[s], err = newEnv(ctx, r, cfg, res, s); err != nil {
				return finish(err)
			}
		}
	}
	phase("generate images", t0)
	t0 = time.Now()
	if err := e.prepare(ctx); err != nil {
		return finish(err)
	}
	phase("prepare "+cfg.Scale, t0)
	res.Paths = e.paths()

	type scenario struct {
		name   string
		weight float64 // share of the time budget: what it took in a trial run
		f      func(context.Context) error
	}
	list := []scenario{
		{"ttff", 20, e.timeToFirstFile},
		{"index", 5, e.index},
		{"export", 4, e.export},
		{"traverse", 45, e.withUnpacked(e.traverse)},
		{"random", 6, e.withUnpacked(e.randomReads)},
		{"disk", 0, e.withUnpacked(e.disk)},
		{"scaling", 20, func(ctx context.Context) error {
			for _, s := range cfg.Scaling {
				se := envs[s]
				if se != e {
					if err := se.ensureCache(ctx); err != nil {
						return err
					}
				}
				if err := se.scaling(ctx); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	var left float64
	for _, sc := range list {
		if cfg.Only == nil || cfg.Only[sc.name] {
			left += sc.weight
		}
	}
	for _, sc := range list {
		if cfg.Only != nil && !cfg.Only[sc.name] {
			continue
		}
		r.until = time.Time{}
		if !cfg.Deadline.IsZero() && sc.weight > 0 {
			share := time.Duration(float64(time.Until(cfg.Deadline)) * sc.weight / left)
			r.until = time.Now().Add(share)
			left -= sc.weight
			cfg.Log.Info("scenario budget", "scenario", sc.name, "share", share.Round(time.Second))
		}
		t0 := time.Now()
		err := sc.f(ctx)
		phase(sc.name, t0)
		if err != nil {
			return finish(fmt.Errorf("%s: %w", sc.name, err))
		}
		if err := ctx.Err(); err != nil {
			return finish(err)
		}
	}
	return finish(nil)
}

func ocifsHas(ctx context.Context, ocifs, sub string) bool {
	_, err := shell(ctx, quote(ocifs)+" "+sub+" --help >/dev/null 2>&1")
	return err == nil
}

// newEnv generates (or reuses) the image of scale and lays out its work
// directory.
func newEnv(ctx context.Context, r *runner, cfg *Config, res *Result, scale string) (*env, error) {
	opts, err := gen.ScaleOptions(scale, cfg.Seed)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "bench: image %s (%s)\n", scale, opts.Key())
	meta, err := gen.Cached(ctx, filepath.Join(cfg.Out, "layouts"), opts)
	if err != nil {
		return nil, err
	}
	e := &env{r: r, cfg: cfg, res: res, meta: meta, label: scale, work: filepath.Join(cfg.Out, "work", opts.Key())}
	info := ScaleInfo{Scale: scale, Key: opts.Key(), Totals: meta.Totals, Layers: len(meta.Layers), GenSecs: meta.Seconds}
	var gz, zs, lower []string
	for i, l := range meta.Layers {
		info.TarBytes += l.TarSize
		info.GzipBytes += l.Gzip.Size
		info.ZstdBytes += l.Zstd.Size
		gz = append(gz, quote(meta.BlobPath(l.Gzip.Digest)))
		zs = append(zs, quote(meta.BlobPath(l.Zstd.Digest)))
		lower = append(lower, filepath.Join(e.work, "layers", strconv.Itoa(i+1)))
		// archivemount knows nothing of whiteouts: it gets the largest
		// layer that has none (the base).
		if l.Counts.Whiteouts+l.Counts.Opaques == 0 && (info.Archive == 0 || l.Gzip.Size > meta.Layers[info.Archive-1].Gzip.Size) {
			info.Archive = i + 1
		}
	}
	if info.Archive == 0 {
		info.Archive = 1
	}
	big := meta.Layers[info.Archive-1]
	info.ArchiveMiB = float64(big.Gzip.Size) / (1 << 20)
	info.ArchiveEntries = big.Counts.Entries
	slices.Reverse(lower) // overlay: the top layer first
	res.Scales = append(res.Scales, info)
	e.vars = map[string]string{
		"OCIFS":   quote(cfg.Ocifs),
		"LAYOUT":  quote(meta.Layout),
		"CACHE":   quote(filepath.Join(e.work, "cache")),
		"EMPTY":   quote(filepath.Join(e.work, "cache-empty")),
		"MNT":     quote(filepath.Join(e.work, "mnt")),
		"DIR":     quote(filepath.Join(e.work, "unpacked")),
		"TMP":     quote(filepath.Join(e.work, "tmp")),
		"LAYERS":  strings.Join(gz, " "),
		"ZLAYERS": strings.Join(zs, " "),
		"BIG":     quote(meta.BlobPath(big.Gzip.Digest)),
		"LOWER":   quote(strings.Join(lower, ":")),
		"OVL":     quote(filepath.Join(e.work, "ovl")),
		"AM":      quote(filepath.Join(e.work, "am")),
	}
	for _, d := range []string{"mnt", "ovl", "am", "layers"} {
		if err := os.MkdirAll(filepath.Join(e.work, d), 0o755); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// paths explains the symbols used in the reported commands.
func (e *env) paths() [][2]string {
	return [][2]string{
		{"$OCIFS", "bin/ocifs, built by `make bench`"},
		{"$LAYOUT", "the generated OCI layout (" + e.meta.Options.Key() + "; in the scaling table, that scale's): image tags `gzip` and `zstd`"},
		{"$LAYERS", "its gzip layer blobs, lowest first; $ZLAYERS: the zstd ones"},
		{"$BIG", fmt.Sprintf("the gzip blob of the largest layer without whiteouts (layer %d), for archivemount", e.res.Scales[0].Archive)},
		{"$CACHE", "an ocifs index cache filled beforehand by `ocifs index` (warm)"},
		{"$EMPTY", "an empty ocifs index cache directory (cold; removed before every repetition)"},
		{"$MNT, $OVL, $AM", "mount points of ocifs, fuse-overlayfs and archivemount"},
		{"$DIR", "the tree `umoci raw unpack` made of the gzip image (the unpacked directory)"},
		{"$TMP", "an empty directory (removed after every repetition)"},
		{"$LOWER", "the layers unpacked one by one with `tar -xzf` (whiteouts kept as .wh. files), top first, :-separated"},
	}
}

// x expands $VARS in a command template.
func (e *env) x(tmpl string) string {
	return os.Expand(tmpl, func(k string) string {
		if v, ok := e.vars[k]; ok {
			return v
		}
		return "$" + k
	})
}

func (e *env) sh(ctx context.Context, tmpl string) (string, error) { return shell(ctx, e.x(tmpl)) }

// path is a var as a plain path (vars are quoted for the shell).
func (e *env) path(k string) string {
	v := e.vars[k]
	if strings.HasPrefix(v, "'") {
		v = strings.ReplaceAll(strings.Trim(v, "'"), `'\''`, "'")
	}
	return v
}

// prepare makes what several scenarios share, untimed: the warm index
// cache, the unpacked tree and the separately unpacked layers.
func (e *env) prepare(ctx context.Context) error {
	if err := e.ensureCache(ctx); err != nil {
		return err
	}
	sel := func(s ...string) bool {
		if e.cfg.Only == nil {
			return true
		}
		for _, x := range s {
			if e.cfg.Only[x] {
				return true
			}
		}
		return false
	}
	if sel("traverse", "random", "disk") {
		// The time-to-first-file scenario keeps one of its umoci
		// trees; ensureUnpacked runs again before the scenarios that
		// need one.
		if !sel("ttff") || !have("umoci") {
			if err := e.ensureUnpacked(ctx); err != nil {
				return err
			}
		}
		if err := e.ensureLayers(ctx); err != nil {
			return err
		}
	}
	return nil
}

// ensureCache builds a fresh warm index cache (a stale one from an
// older ocifs would make the disk numbers wrong).
func (e *env) ensureCache(ctx context.Context) error {
	if !e.res.Ocifs.Mount && !e.res.Ocifs.Index {
		return nil
	}
	if err := os.RemoveAll(e.path("CACHE")); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %s: indexing into the warm cache\n", e.label)
	var err error
	if e.res.Ocifs.Index {
		_, err = e.sh(ctx, "$OCIFS index --cache-dir $CACHE $LAYOUT:gzip >/dev/null")
	} else {
		_, err = e.sh(ctx, "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT")
		if uerr := e.umountOcifs(ctx); err == nil {
			err = uerr
		}
	}
	if err != nil {
		e.res.Notes = append(e.res.Notes, fmt.Sprintf("Filling the warm index cache failed at %s: %v", e.label, err))
		e.cfg.Log.Warn("warm cache", "scale", e.label, "err", err)
	}
	return nil
}

// withUnpacked runs f once the unpacked tree exists.
func (e *env) withUnpacked(f func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := e.ensureUnpacked(ctx); err != nil {
			return err
		}
		return f(ctx)
	}
}

func (e *env) ensureUnpacked(ctx context.Context) error {
	ok := filepath.Join(e.work, "unpacked.ok")
	if exists(ok) {
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench: %s: umoci raw unpack (the unpacked directory)\n", e.label)
	if _, err := e.sh(ctx, "rm -rf $DIR && umoci raw unpack --image $LAYOUT:gzip $DIR"); err != nil {
		return fmt.Errorf("unpack with umoci: %w", err)
	}
	return os.WriteFile(ok, nil, 0o644)
}

func (e *env) ensureLayers(ctx context.Context) error {
	ok := filepath.Join(e.work, "layers.ok")
	if exists(ok) {
		return nil
	}
	fmt.Fprintf(os.Stderr, "bench: %s: unpacking the layers one by one (fuse-overlayfs lowerdirs)\n", e.label)
	for i, l := range e.meta.Layers {
		dir := filepath.Join(e.work, "layers", strconv.Itoa(i+1))
		if _, err := shell(ctx, fmt.Sprintf("rm -rf %s && mkdir -p %s && tar -xzf %s -C %s", quote(dir), quote(dir), quote(e.meta.BlobPath(l.Gzip.Digest)), quote(dir))); err != nil {
			return fmt.Errorf("unpack layer %d: %w", i+1, err)
		}
	}
	return os.WriteFile(ok, nil, 0o644)
}

// umountOcifs unmounts $MNT and waits for its daemon to exit: a daemon
// still tearing down its memory (hundreds of MiB after a cold index)
// would share the two cores with the next timed step.
func (e *env) umountOcifs(ctx context.Context) error {
	if err := unmount(ctx, e.path("MNT"), e.x("$OCIFS umount $MNT")); err != nil {
		return err
	}
	pattern := " mount .*" + regexp.QuoteMeta(e.path("MNT")) + "$"
	for range 250 {
		if err := exec.CommandContext(ctx, "pgrep", "-f", pattern).Run(); err != nil {
			return nil // exit 1: no such process (or no pgrep: nothing to wait for)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the ocifs daemon of %s is still running 5s after unmounting", e.path("MNT"))
}

// drop drops the kernel caches when the run can.
func (e *env) drop() {
	if e.res.DropCaches {
		if err := dropCaches(); err != nil {
			e.cfg.Log.Warn("drop caches", "err", err)
		}
	}
}

// secondMount prepares a warm mount: a second mount of the same image.
// It mounts with the warm index cache, reads the file the timed step
// reads and unmounts, waiting for the daemon to exit, so that what a
// first mount reads (index cache, binary, the blob span holding the
// file) is in the page cache as it would be. (Reading the whole cache
// and every blob instead left the machine busier than any real second
// mount, and warm mounts came out slower than cold-cache ones.)
func (e *env) secondMount(ctx context.Context) error {
	if err := e.umountOcifs(ctx); err != nil {
		return err
	}
	if _, err := e.sh(ctx, "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT"+fmt.Sprintf(catOSRelease, "$MNT")); err != nil {
		return err
	}
	return e.umountOcifs(ctx)
}

// mountFirstByte mounts with the warm cache by executing ocifs itself
// and reads the first byte of the file the other rows cat: the time
// from ocifs's exec to that byte, with no shell or cat started.
func (e *env) mountFirstByte(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, e.path("OCIFS"), "mount", "--cache-dir", e.path("CACHE"), e.path("LAYOUT")+":gzip", e.path("MNT"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("ocifs mount: %w: %s", err, out)
	}
	f, err := os.Open(filepath.Join(e.path("MNT"), gen.OSReleasePath))
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil {
		return "", fmt.Errorf("read the first byte: %w", err)
	}
	return "", nil
}

// timed is a step that runs a command template.
func (e *env) timed(row *Row, tmpl string, check func(out string) string) step {
	return step{row: row, run: func(ctx context.Context) (string, error) {
		out, err := e.sh(ctx, tmpl)
		if err != nil || check == nil {
			return "", err
		}
		return check(out), nil
	}}
}

func countCheck(unit string) func(string) string {
	return func(out string) string { return strings.TrimSpace(out) + " " + unit }
}

// unavailable marks rows that this run could not measure.
func unavailable(why string, rows ...*Row) {
	for _, r := range rows {
		r.Note = why
	}
}

const catOSRelease = " && cat %s/" + gen.OSReleasePath + " >/dev/null"

// timeToFirstFile: from nothing to the bytes of /etc/os-release.
func (e *env) timeToFirstFile(ctx context.Context) error {
	r := e.r
	const sc = "ttff"
	cold := r.row(sc, "ocifs mount, cold index (empty cache)", "s", "$OCIFS mount --cache-dir $EMPTY $LAYOUT:gzip $MNT"+fmt.Sprintf(catOSRelease, "$MNT"))
	coldZ := r.row(sc, "ocifs mount, cold index, zstd image", "s", "$OCIFS mount --cache-dir $EMPTY $LAYOUT:zstd $MNT"+fmt.Sprintf(catOSRelease, "$MNT"))
	warm := r.row(sc, "ocifs mount, warm index", "s", "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT"+fmt.Sprintf(catOSRelease, "$MNT"))
	direct := r.row(sc, "ocifs mount, warm index, without bash and cat", "s", "exec $OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT, then open and read 1 byte of $MNT/"+gen.OSReleasePath+" in the harness")
	direct.Note = "the same warm mount, timed from the harness itself: what ocifs takes from its exec to the first byte"
	warmDrop := r.row(sc, "ocifs mount, warm index, caches dropped", "s", warm.Cmd)
	umoci := r.row(sc, "umoci raw unpack, then cat", "s", "umoci raw unpack --image $LAYOUT:gzip $TMP"+fmt.Sprintf(catOSRelease, "$TMP"))
	tarx := r.row(sc, "tar -xzf every layer, then cat", "s", "mkdir $TMP && for l in $LAYERS; do tar -xzf $l -C $TMP; done"+fmt.Sprintf(catOSRelease, "$TMP"))
	shell := r.row(sc, "cat from the unpacked directory", "s", "true"+fmt.Sprintf(catOSRelease, "$DIR"))
	shell.Note = "what every row pays for bash and cat themselves: the file is in the page cache"
	umoci.Baseline = true
	for _, row := range []*Row{cold, coldZ, warm, direct, warmDrop, tarx} {
		row.Versus = umoci.Name
	}
	cold.Target = "≤ 0.3× umoci"
	// Mount → first byte is what ocifs takes: bash's start is no part
	// of it (a user's shell is running already), and the shell row
	// stays beside it, with what bash and cat cost alone.
	direct.Target = "≤ 50 ms"
	warm.Note = "includes starting bash and cat (the last row); the target applies to the row without them"
	tarx.Note = "whiteouts not applied (all layers into one directory)"

	var trials []*trial
	if e.res.Ocifs.Mount {
		ocifsTrial := func(name string, row *Row, cacheVar string, setup func(context.Context) error) *trial {
			return &trial{
				name:  name,
				setup: setup,
				steps: []step{e.timed(row, row.Cmd, nil)},
				teardown: func(ctx context.Context) error {
					return e.umountOcifs(ctx)
				},
				fast: cacheVar == "CACHE",
			}
		}
		emptyCold := func(ctx context.Context) error {
			if err := e.umountOcifs(ctx); err != nil {
				return err
			}
			if err := os.RemoveAll(e.path("EMPTY")); err != nil {
				return err
			}
			e.drop()
			return nil
		}
		trials = append(trials,
			ocifsTrial("ocifs cold", cold, "EMPTY", emptyCold),
			ocifsTrial("ocifs cold zstd", coldZ, "EMPTY", emptyCold),
			ocifsTrial("ocifs warm", warm, "CACHE", func(ctx context.Context) error {
				return e.secondMount(ctx)
			}),
			&trial{
				name:     "ocifs warm direct",
				setup:    e.secondMount,
				steps:    []step{{row: direct, run: e.mountFirstByte}},
				teardown: e.umountOcifs,
				fast:     true,
			},
			ocifsTrial("ocifs warm dropped", warmDrop, "CACHE", func(ctx context.Context) error {
				if err := e.umountOcifs(ctx); err != nil {
					return err
				}
				e.drop()
				return nil
			}),
		)
	} else {
		unavailable("not measured: no `ocifs mount`", cold, coldZ, warm, direct, warmDrop)
	}
	rmTmp := func(ctx context.Context) error {
		_, err := e.sh(ctx, "rm -rf $TMP")
		e.drop()
		return err
	}
	// The last good umoci tree becomes the unpacked directory, which
	// saves one more unpack.
	var umociOK bool
	umociStep := e.timed(umoci, umoci.Cmd, nil)
	run := umociStep.run
	umociStep.run = func(ctx context.Context) (string, error) {
		out, err := run(ctx)
		umociOK = err == nil
		return out, err
	}
	if have("umoci") {
		trials = append(trials, &trial{
			name: "umoci", setup: rmTmp, steps: []step{umociStep},
			teardown: func(ctx context.Context) error {
				if umociOK && !exists(filepath.Join(e.work, "unpacked.ok")) {
					if _, err := e.sh(ctx, "rm -rf $DIR && mv $TMP $DIR"); err != nil {
						return err
					}
					return os.WriteFile(filepath.Join(e.work, "unpacked.ok"), nil, 0o644)
				}
				_, err := e.sh(ctx, "rm -rf $TMP")
				return err
			},
		})
	} else {
		unavailable("not measured: umoci not installed", umoci)
	}
	trials = append(trials, &trial{
		name: "shell", setup: e.ensureUnpacked, steps: []step{e.timed(shell, shell.Cmd, nil)}, fast: true,
	}, &trial{
		name: "tar", setup: rmTmp, steps: []step{e.timed(tarx, tarx.Cmd, nil)},
		teardown: func(ctx context.Context) error { _, err := e.sh(ctx, "rm -rf $TMP"); return err },
	})
	r.rounds(ctx, trials...)
	return nil
}

// readBlobs puts the layer blobs into the page cache: the index and
// export scenarios compare CPU work, not the disk.
func (e *env) readBlobs(ctx context.Context) error {
	_, err := e.sh(ctx, "cat $LAYERS $ZLAYERS >/dev/null")
	return err
}

// index: `ocifs index` against decompressing the same blobs (issue 3).
func (e *env) index(ctx context.Context) error {
	r := e.r
	const sc = "index"
	gz := r.row(sc, "gzip -dc, layers one after another", "s", "gzip -dc $LAYERS >/dev/null")
	ix := r.row(sc, "ocifs index, gzip image, empty cache", "s", "$OCIFS index --cache-dir $EMPTY $LAYOUT:gzip >/dev/null")
	zs := r.row(sc, "zstd -dc, layers one after another", "s", "zstd -dcq $ZLAYERS >/dev/null")
	ixz := r.row(sc, "ocifs index, zstd image, empty cache", "s", "$OCIFS index --cache-dir $EMPTY $LAYOUT:zstd >/dev/null")
	gz.Baseline, zs.Baseline = true, true
	ix.Versus, ixz.Versus = gz.Name, zs.Name
	ix.Target = "≤ 0.8× gzip -dc"
	trials := []*trial{
		{name: "gzip", setup: e.readBlobs, steps: []step{e.timed(gz, gz.Cmd, nil)}},
		{name: "zstd", setup: e.readBlobs, steps: []step{e.timed(zs, zs.Cmd, nil)}},
	}
	if e.res.Ocifs.Index {
		for _, row := range []*Row{ix, ixz} {
			trials = append(trials, &trial{
				name: row.Name,
				setup: func(ctx context.Context) error {
					if err := os.RemoveAll(e.path("EMPTY")); err != nil {
						return err
					}
					return e.readBlobs(ctx)
				},
				steps: []step{e.timed(row, row.Cmd, nil)},
			})
		}
	} else {
		unavailable("not measured: no `ocifs index`", ix, ixz)
	}
	r.rounds(ctx, trials...)
	return nil
}

// export: `ocifs export` against decompressing the layers (issue 7).
func (e *env) export(ctx context.Context) error {
	r := e.r
	const sc = "export"
	gz := r.row(sc, "gzip -dc, layers one after another, into wc -c", "s", "gzip -dc $LAYERS | wc -c")
	ex := r.row(sc, "ocifs export (warm index) into wc -c", "s", "$OCIFS export --cache-dir $CACHE $LAYOUT:gzip | wc -c")
	gz.Baseline, ex.Versus, ex.Target = true, gz.Name, "≤ 1.3× gzip -dc"
	trials := []*trial{{name: "gzip", setup: e.readBlobs, steps: []step{e.timed(gz, gz.Cmd, countCheck("bytes"))}}}
	if e.res.Ocifs.Export {
		trials = append(trials, &trial{name: "export", setup: e.readBlobs, steps: []step{e.timed(ex, ex.Cmd, countCheck("bytes"))}})
	} else {
		unavailable("not measured: no `ocifs export`", ex)
	}
	r.rounds(ctx, trials...)
	return nil
}

// system is a tree to traverse: a directory or a FUSE mount.
type system struct {
	name    string
	root    string // symbol: $MNT, $DIR, …
	mount   string // command template; empty for a directory
	umount  func(ctx context.Context) error
	daemon  []string // process names, for the RSS
	limit   time.Duration
	missing string // why it cannot run
	// tolerant ignores errors of find and tar: archivemount 0.8.7 lists
	// entries below a directory named like its parent (a/b/b/…) that it
	// then cannot stat. The entries seen are reported instead.
	tolerant bool
}

func (e *env) systems() []*system {
	var ss []*system
	ocifs := &system{name: "ocifs", root: "$MNT", mount: "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT", umount: e.umountOcifs, daemon: []string{"ocifs"}}
	if !e.res.Ocifs.Mount {
		ocifs.missing = "not measured: no `ocifs mount`"
	}
	ss = append(ss, ocifs, &system{name: "unpacked directory (umoci)", root: "$DIR"})
	ovl := &system{name: "fuse-overlayfs over unpacked layers", root: "$OVL", mount: "fuse-overlayfs -o lowerdir=$LOWER $OVL", daemon: []string{"fuse-overlayfs"}}
	ovl.umount = func(ctx context.Context) error { return unmount(ctx, e.path("OVL"), "") }
	if !have("fuse-overlayfs") {
		ovl.missing = "not measured: fuse-overlayfs not installed"
	}
	am := &system{name: fmt.Sprintf("archivemount, layer %d only", e.res.Scales[0].Archive), root: "$AM", mount: "archivemount -o readonly $BIG $AM", daemon: []string{"archivemount"}, limit: e.cfg.Archive, tolerant: true}
	am.umount = func(ctx context.Context) error { return unmount(ctx, e.path("AM"), "") }
	if !have("archivemount") {
		am.missing = "not measured: archivemount not installed"
	}
	return append(ss, ovl, am)
}

// fresh unmounts, drops the caches and mounts sys again (untimed).
func (e *env) fresh(ctx context.Context, s *system) error {
	if s.umount != nil {
		if err := s.umount(ctx); err != nil {
			return err
		}
	}
	e.drop()
	if s.mount == "" {
		return nil
	}
	_, err := e.sh(ctx, s.mount)
	return err
}

// traverse: find -ls and reading every file, first and second pass.
func (e *env) traverse(ctx context.Context) error {
	r := e.r
	const sc = "traverse"
	const (
		colMount = "mount"
		colFind1 = "find -ls, 1st pass"
		colFind2 = "find -ls, 2nd pass"
		colRead1 = "read all, 1st pass"
		colRead2 = "read all, 2nd pass"
	)
	var trials []*trial
	var base string
	for _, s := range e.systems() {
		findCmd, readCmd := "find %s -ls | wc -l", "tar -cf - -C %s . | wc -c"
		if s.tolerant {
			findCmd, readCmd = "{ find %s -ls 2>/dev/null || true; } | wc -l", "{ tar -cf - -C %s . 2>/dev/null || true; } | wc -c"
		}
		rows := map[string]*Row{}
		for _, col := range []string{colFind1, colFind2, colRead1, colRead2} {
			cmd := fmt.Sprintf(findCmd, s.root)
			if strings.HasPrefix(col, "read") {
				cmd = fmt.Sprintf(readCmd, s.root)
			}
			row := r.row(sc, s.name, "s", cmd)
			row.Column = col
			rows[col] = row
		}
		if s.root == "$DIR" {
			base = s.name
			for _, row := range rows {
				row.Baseline = true
			}
		}
		mem := &Row{} // a directory has no daemon
		if s.daemon != nil {
			mem = r.row("memory", s.name, "KiB", "VmHWM of the daemon after the full-read repetition (/proc/PID/status)")
			mem.Column = "daemon peak RSS"
		}
		if s.name == "ocifs" {
			rows[colFind2].Target = "≤ 1.5× unpacked, < fuse-overlayfs"
			rows[colRead2].Target = "≤ 1.5× unpacked"
			mem.Target = "≤ 150 MiB"
		}
		if s.missing != "" {
			for _, row := range rows {
				row.Note = s.missing
			}
			mem.Note = s.missing
			continue
		}
		find := &trial{name: s.name + " find", setup: func(ctx context.Context) error { return e.fresh(ctx, s) }, teardown: s.umount}
		if s.tolerant {
			rows[colFind1].Note = fmt.Sprintf("errors ignored: archivemount cannot stat entries below a directory named like its parent (the layer has %s entries)", thousands(e.res.Scales[0].ArchiveEntries))
		}
		if s.root == "$AM" {
			// archivemount reads the whole layer when it mounts:
			// that is part of its time to the first traversal.
			m := r.row(sc, s.name, "s", s.mount)
			m.Column = colMount
			find.setup = func(ctx context.Context) error {
				if err := s.umount(ctx); err != nil {
					return err
				}
				e.drop()
				return nil
			}
			ms := e.timed(m, s.mount, nil)
			ms.limit = s.limit
			find.steps = append(find.steps, ms)
		}
		for _, col := range []string{colFind1, colFind2} {
			st := e.timed(rows[col], rows[col].Cmd, countCheck("entries"))
			st.limit = s.limit
			find.steps = append(find.steps, st)
		}
		read := &trial{name: s.name + " read", setup: func(ctx context.Context) error { return e.fresh(ctx, s) }}
		for _, col := range []string{colRead1, colRead2} {
			st := e.timed(rows[col], rows[col].Cmd, countCheck("bytes"))
			st.limit = s.limit
			read.steps = append(read.steps, st)
		}
		read.teardown = func(ctx context.Context) error {
			if s.daemon != nil {
				pid, err := daemonPID(e.path(strings.TrimPrefix(s.root, "$")), s.daemon...)
				if err == nil {
					var kib int64
					kib, err = peakRSS(pid)
					r.value(mem, float64(kib), err)
				} else {
					mem.Err = err.Error()
				}
			}
			if s.umount != nil {
				return s.umount(ctx)
			}
			return nil
		}
		trials = append(trials, find, read)
	}
	for _, row := range r.rows {
		// archivemount serves another tree (one layer): no ratio.
		if row.Scenario == sc && !row.Baseline && !strings.HasPrefix(row.Name, "archivemount") {
			row.Versus = base
		}
	}
	r.rounds(ctx, trials...)
	return nil
}

// randomFiles picks n regular files of the unpacked tree, with the
// run's seed, as paths relative to the root.
func (e *env) randomFiles(n int) ([]string, error) {
	root := e.path("DIR")
	var all []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			all = append(all, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(all)
	rng := rand.New(rand.NewPCG(e.cfg.Seed, 1000))
	rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all[:min(n, len(all))], nil
}

// randomReads: the same random files read cold, then warm.
func (e *env) randomReads(ctx context.Context) error {
	r := e.r
	const sc = "random"
	files, err := e.randomFiles(e.cfg.Random)
	if err != nil {
		return fmt.Errorf("pick random files: %w", err)
	}
	cmd := fmt.Sprintf("read %d random regular files one after another (in the harness: os.ReadFile each) under ", len(files))
	var trials []*trial
	var base string
	for _, s := range e.systems() {
		if s.root == "$AM" {
			continue // one layer only: not the same files
		}
		cold := r.row(sc, s.name, "s", cmd+s.root)
		warm := r.row(sc, s.name, "s", cmd+s.root)
		cold.Column, warm.Column = "cold", "warm"
		if s.root == "$DIR" {
			base = s.name
			cold.Baseline, warm.Baseline = true, true
		}
		if s.missing != "" {
			unavailable(s.missing, cold, warm)
			continue
		}
		root := e.path(strings.TrimPrefix(s.root, "$"))
		read := func(ctx context.Context) (string, error) {
			var n int64
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					return "", err
				}
				b, err := os.ReadFile(filepath.Join(root, f))
				if err != nil {
					return "", err
				}
				n += int64(len(b))
			}
			return fmt.Sprintf("%d bytes", n), nil
		}
		trials = append(trials, &trial{
			name:     s.name,
			setup:    func(ctx context.Context) error { return e.fresh(ctx, s) },
			steps:    []step{{row: cold, run: read}, {row: warm, run: read}},
			teardown: s.umount,
		})
	}
	for _, row := range r.rows {
		if row.Scenario == sc && !row.Baseline {
			row.Versus = base
		}
	}
	r.rounds(ctx, trials...)
	return nil
}

// disk: what each approach keeps on disk.
func (e *env) disk(ctx context.Context) error {
	r := e.r
	const sc = "disk"
	tree := r.row(sc, "unpacked tree (umoci raw unpack)", "KiB", "du -sk $DIR")
	cache := r.row(sc, "ocifs index cache", "KiB", "du -sk $CACHE")
	layers := r.row(sc, "layers unpacked one by one (fuse-overlayfs)", "KiB", "du -sk of the directories in $LOWER, together")
	gz := r.row(sc, "the image's gzip blobs (all approaches need them)", "KiB", "sum of the layer sizes")
	zs := r.row(sc, "the image's zstd blobs", "KiB", "sum of the layer sizes")
	tree.Baseline = true
	for _, row := range []*Row{cache, layers, gz, zs} {
		row.Versus = tree.Name
		row.Column = "disk used"
	}
	tree.Column = "disk used"
	cache.Target = "≤ 2 % of the unpacked tree"
	v, err := duKiB(ctx, e.path("DIR"))
	r.value(tree, float64(v), err)
	if e.res.Ocifs.Mount || e.res.Ocifs.Index {
		v, err = duKiB(ctx, e.path("CACHE"))
		r.value(cache, float64(v), err)
	} else {
		unavailable("not measured: no ocifs", cache)
	}
	v, err = duKiB(ctx, filepath.Join(e.work, "layers"))
	r.value(layers, float64(v), err)
	info := e.res.Scales[0]
	r.value(gz, float64(info.GzipBytes)/1024, nil)
	r.value(zs, float64(info.ZstdBytes)/1024, nil)
	return nil
}

// scaling: mount time and memory as the number of files grows.
func (e *env) scaling(ctx context.Context) error {
	r := e.r
	const sc = "scaling"
	const (
		colCold  = "cold index: mount → first byte"
		colWarm  = "warm index: mount → first byte"
		colTrav  = "find -ls + read all (fresh mount)"
		colRSS   = "daemon peak RSS after that"
		colCache = "index cache on disk"
	)
	mk := func(col, unit, cmd string) *Row {
		row := r.row(sc, e.label, unit, cmd)
		row.Column = col
		return row
	}
	cold := mk(colCold, "s", "$OCIFS mount --cache-dir $EMPTY $LAYOUT:gzip $MNT"+fmt.Sprintf(catOSRelease, "$MNT"))
	warm := mk(colWarm, "s", "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT"+fmt.Sprintf(catOSRelease, "$MNT"))
	trav := mk(colTrav, "s", "find $MNT -ls | wc -l && tar -cf - -C $MNT . | wc -c")
	rss := mk(colRSS, "KiB", "VmHWM of the ocifs daemon")
	cache := mk(colCache, "KiB", "du -sk $CACHE")
	if !e.res.Ocifs.Mount {
		unavailable("not measured: no `ocifs mount`", cold, warm, trav, rss, cache)
		return nil
	}
	// The main image's scenarios measured the first two already.
	if e.label == e.cfg.Scale {
		for _, old := range r.rows {
			switch {
			case old.Scenario == "ttff" && old.Name == "ocifs mount, cold index (empty cache)":
				cold.Samples, cold.Note = old.Samples, "from the time-to-first-file scenario"
			case old.Scenario == "ttff" && old.Name == "ocifs mount, warm index":
				warm.Samples, warm.Note = old.Samples, "from the time-to-first-file scenario"
			}
		}
	}
	var trials []*trial
	if len(cold.Samples) == 0 {
		trials = append(trials, &trial{
			name: "cold",
			setup: func(ctx context.Context) error {
				if err := e.umountOcifs(ctx); err != nil {
					return err
				}
				if err := os.RemoveAll(e.path("EMPTY")); err != nil {
					return err
				}
				e.drop()
				return nil
			},
			steps:    []step{e.timed(cold, cold.Cmd, nil)},
			teardown: e.umountOcifs,
		})
	}
	if len(warm.Samples) == 0 {
		trials = append(trials, &trial{
			name: "warm",
			setup: func(ctx context.Context) error {
				return e.secondMount(ctx)
			},
			steps:    []step{e.timed(warm, warm.Cmd, nil)},
			teardown: e.umountOcifs,
			fast:     true,
		})
	}
	r.rounds(ctx, trials...)

	// One traversal on a fresh mount, then the daemon's peak RSS.
	travTrial := &trial{
		name: "traversal",
		setup: func(ctx context.Context) error {
			if err := e.umountOcifs(ctx); err != nil {
				return err
			}
			e.drop()
			_, err := e.sh(ctx, "$OCIFS mount --cache-dir $CACHE $LAYOUT:gzip $MNT")
			return err
		},
		steps: []step{e.timed(trav, trav.Cmd, func(out string) string {
			f := strings.Fields(out)
			if len(f) == 2 {
				return f[0] + " entries, " + f[1] + " bytes"
			}
			return strings.Join(f, " ")
		})},
		teardown: func(ctx context.Context) error {
			pid, err := daemonPID(e.path("MNT"), "ocifs")
			if err == nil {
				var kib int64
				kib, err = peakRSS(pid)
				r.value(rss, float64(kib), err)
			} else {
				rss.Err = err.Error()
			}
			return e.umountOcifs(ctx)
		},
		reps: 1,
	}
	r.rounds(ctx, travTrial)
	v, err := duKiB(ctx, e.path("CACHE"))
	r.value(cache, float64(v), err)
	return nil
}
