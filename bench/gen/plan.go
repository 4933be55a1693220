package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
)

// kind is a planned tar entry's type.
type kind uint8

const (
	kindDir kind = iota
	kindFile
	kindSymlink
	kindHardlink
)

// fill says how a regular file's bytes are made.
type fill uint8

const (
	fillText   fill = iota // lines of words: compresses about 3:1
	fillCode               // machine-code-like: about 1.7:1
	fillRandom             // already compressed data: 1:1
	fillFixed              // entry.data verbatim
)

// Whiteout names, image-spec layer.md "Whiteouts".
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// entry is one planned tar entry. Names are relative, cleaned and have
// no trailing slash, as tar writers from build tools emit them.
type entry struct {
	name  string
	kind  kind
	fill  fill
	size  int64
	link  string // symlink target, or the name of a hardlink's target
	data  []byte // fillFixed
	mode  int64
	uid   int
	gid   int
	mtime int64 // Unix seconds
}

// layerPlan is the entries of one layer.
type layerPlan struct {
	comment string
	entries map[string]*entry
}

// sorted returns the entries in tar order: depth-first, each directory
// before its contents, names in byte order. Hardlink names are chosen
// to sort after their targets.
func (l *layerPlan) sorted() []*entry {
	es := make([]*entry, 0, len(l.entries))
	for _, e := range l.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int { return comparePath(a.name, b.name) })
	return es
}

// comparePath orders paths as a depth-first walk does: '/' sorts before
// every other byte, so "a/b" comes before "a-b" and a directory right
// before its contents.
func comparePath(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		if ca == '/' {
			return -1
		}
		if cb == '/' {
			return 1
		}
		if ca < cb {
			return -1
		}
		return 1
	}
	return len(a) - len(b)
}

// osRelease is /etc/os-release of every generated image, the file the
// time-to-first-file benchmark reads.
const osRelease = `PRETTY_NAME="ocifs benchmark image"
NAME="ocifs-bench"
ID=ocifs-bench
ID_LIKE=debian
VERSION_ID="1"
HOME_URL="https://github.com/ocifs/ocifs"
`

// planner builds the layer plans. Everything it decides comes from rng,
// so the plan depends only on the options.
type planner struct {
	opts   Options
	rng    *rand.Rand
	voc    *vocabulary
	layers []*layerPlan
	cur    *layerPlan
	epoch  int64

	// live is the merged view so far (every layer's entries with the
	// whiteouts applied): upper layers pick what to delete from it.
	live map[string]*entry
	// deletable lists, per layer, regular files and symlinks that may be
	// whited out later (no hardlinks, nothing a hardlink points to).
	deletable [][]string
	// pkgDirs lists, per layer, directories that may be removed whole or
	// made opaque later (they hold no hardlinks).
	pkgDirs [][]string

	smalls []*entry                // sizes drawn from per-group distributions
	bigs   [len(bigShare)][]*entry // sizes are weights until finish shares out the budget
}

func newPlanner(opts Options) *planner {
	rng := rand.New(rand.NewPCG(opts.Seed, 0x6f636966732d62)) // "ocifs-b"
	return &planner{
		opts:  opts,
		rng:   rng,
		voc:   newVocabulary(rng),
		epoch: 1700000000,
		live:  map[string]*entry{},
	}
}

// count is frac of the image's files, at least lo. The fractions add
// up to 0.94 of the files; the factor brings the non-directory entries
// of all layers to the number asked for.
func (p *planner) count(frac float64, lo int) int {
	return max(lo, int(math.Round(1.06*frac*float64(p.opts.Files))))
}

// beginLayer starts a new layer; its entries get mtimes of its own day.
func (p *planner) beginLayer(comment string) {
	p.cur = &layerPlan{comment: comment, entries: map[string]*entry{}}
	p.layers = append(p.layers, p.cur)
	p.deletable = append(p.deletable, nil)
	p.pkgDirs = append(p.pkgDirs, nil)
	p.epoch += 86400 * 30
}

func (p *planner) layerIndex() int { return len(p.layers) - 1 }

func (p *planner) mtime() int64 { return p.epoch + p.rng.Int64N(86400) }

// add puts e into the current layer (creating its parent directories)
// and into the merged view.
func (p *planner) add(e *entry) *entry {
	if e.mtime == 0 {
		e.mtime = p.mtime()
	}
	p.parents(e.name)
	p.cur.entries[e.name] = e
	p.live[e.name] = e
	return e
}

// parents adds the directories above name to the current layer, as tar
// writers of build tools do.
func (p *planner) parents(name string) {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if _, ok := p.cur.entries[dir]; ok {
			return
		}
		mode, uid := int64(0o755), 0
		if old, ok := p.live[dir]; ok && old.kind == kindDir {
			mode, uid = old.mode, old.uid
		}
		d := &entry{name: dir, kind: kindDir, mode: mode, uid: uid, gid: uid, mtime: p.mtime()}
		p.cur.entries[dir] = d
		p.live[dir] = d
	}
}

// exists reports whether name is taken in the current layer or the
// merged view, or deleted by the current layer (a layer must not both
// delete a name and have it).
func (p *planner) exists(name string) bool {
	if _, ok := p.cur.entries[name]; ok {
		return true
	}
	if _, ok := p.cur.entries[path.Join(path.Dir(name), whiteoutPrefix+path.Base(name))]; ok {
		return true
	}
	_, ok := p.live[name]
	return ok
}

// unique returns dir/base, or dir/base-N if that is taken.
func (p *planner) unique(dir, base, ext string) string {
	name := path.Join(dir, base+ext)
	for i := 2; p.exists(name); i++ {
		name = path.Join(dir, fmt.Sprintf("%s-%d%s", base, i, ext))
	}
	return name
}

func (p *planner) dir(name string, mode int64, uid int) *entry {
	return p.add(&entry{name: name, kind: kindDir, mode: mode, uid: uid, gid: uid})
}

// small adds a regular file whose size is drawn around median bytes.
func (p *planner) small(name string, f fill, median float64, mode int64, uid int) *entry {
	e := p.add(&entry{name: name, kind: kindFile, fill: f, size: p.logNormal(median, 1.0, 512<<10), mode: mode, uid: uid, gid: uid})
	p.smalls = append(p.smalls, e)
	p.deletable[p.layerIndex()] = append(p.deletable[p.layerIndex()], name)
	return e
}

// bigClass groups big files that share a fixed part of the byte budget.
type bigClass uint8

const (
	classBin    bigClass = iota // executables
	classLib                    // shared libraries of the base
	classAppLib                 // the application's native code
	classData                   // models, archives: incompressible
)

// bigShare is each class's part of the bytes the small files leave.
var bigShare = [...]float64{classBin: 0.15, classLib: 0.35, classAppLib: 0.30, classData: 0.20}

// big adds a regular file that gets a part of its class's bytes
// proportional to weight.
func (p *planner) big(name string, class bigClass, f fill, weight float64, mode int64, uid int) *entry {
	e := p.add(&entry{name: name, kind: kindFile, fill: f, size: int64(weight * 1e6), mode: mode, uid: uid, gid: uid})
	p.bigs[class] = append(p.bigs[class], e)
	return e
}

func (p *planner) fixed(name, data string, mode int64) *entry {
	return p.add(&entry{name: name, kind: kindFile, fill: fillFixed, data: []byte(data), size: int64(len(data)), mode: mode})
}

func (p *planner) symlink(name, target string) *entry {
	return p.add(&entry{name: name, kind: kindSymlink, link: target, mode: 0o777})
}

// hardlink adds a second name for target, in the same layer. The
// caller picks a name that sorts after target.
func (p *planner) hardlink(name string, target *entry) *entry {
	return p.add(&entry{name: name, kind: kindHardlink, link: target.name, mode: target.mode, uid: target.uid, gid: target.gid, mtime: target.mtime})
}

// whiteout deletes name (a file or a whole directory) of a lower layer.
func (p *planner) whiteout(name string) {
	wh := path.Join(path.Dir(name), whiteoutPrefix+path.Base(name))
	p.add(&entry{name: wh, kind: kindFile, fill: fillFixed, mode: 0o644})
	delete(p.live, wh) // the marker is not part of the merged tree
	p.removeLive(name)
}

// opaque hides everything lower layers have in dir; the current layer
// then adds its own contents.
func (p *planner) opaque(dir string) {
	p.removeLive(dir)
	p.dir(dir, 0o755, 0)
	m := path.Join(dir, opaqueMarker)
	p.add(&entry{name: m, kind: kindFile, fill: fillFixed, mode: 0o644})
	delete(p.live, m)
}

func (p *planner) removeLive(name string) {
	e, ok := p.live[name]
	delete(p.live, name)
	if ok && e.kind != kindDir {
		return
	}
	prefix := name + "/"
	for k := range p.live {
		if strings.HasPrefix(k, prefix) {
			delete(p.live, k)
		}
	}
}

// pickLive returns a random name from names that is still in the merged
// view and not under any of the excluded prefixes, or "".
func (p *planner) pickLive(names []string, exclude ...string) string {
	if len(names) == 0 {
		return ""
	}
	for range 64 {
		n := names[p.rng.IntN(len(names))]
		if _, ok := p.live[n]; !ok {
			continue
		}
		if slices.ContainsFunc(exclude, func(x string) bool { return n == x || strings.HasPrefix(n, x+"/") }) {
			continue
		}
		return n
	}
	return ""
}

// logNormal draws a size around median, capped at hi.
func (p *planner) logNormal(median, sigma float64, hi int64) int64 {
	v := median * math.Exp(sigma*p.rng.NormFloat64())
	return min(hi, int64(v))
}

// tree spreads n files over a new directory tree under root, about
// perDir to a directory and at most depth levels deep; file is called
// with the directory for each. The new directories are returned, root
// first.
func (p *planner) tree(root string, n int, perDir float64, depth int, dirName func() string, file func(dir string)) []string {
	type node struct {
		name  string
		depth int
	}
	nodes := []node{{root, 0}}
	p.dir(root, 0o755, 0)
	for range max(0, int(float64(n)/perDir)-1) {
		var parent node
		for {
			// Half the time extend one of the newest directories:
			// that is what makes long chains (deep trees).
			if p.rng.IntN(2) == 0 {
				parent = nodes[max(0, len(nodes)-1-p.rng.IntN(6))]
			} else {
				parent = nodes[p.rng.IntN(len(nodes))]
			}
			if parent.depth < depth {
				break
			}
		}
		name := p.unique(parent.name, dirName(), "")
		p.dir(name, 0o755, 0)
		nodes = append(nodes, node{name, parent.depth + 1})
	}
	for range n {
		file(nodes[p.rng.IntN(len(nodes))].name)
	}
	names := make([]string, len(nodes))
	for i, nd := range nodes {
		names[i] = nd.name
	}
	return names
}

// finish shares out the byte budget: small files keep their drawn sizes
// unless they would take more than 45 % of it (then they shrink
// together), and the big files share the rest by weight.
func (p *planner) finish() {
	var small int64
	for _, e := range p.smalls {
		small += e.size
	}
	if limit := int64(0.45 * float64(p.opts.Bytes)); small > limit {
		f := float64(limit) / float64(small)
		small = 0
		for _, e := range p.smalls {
			e.size = int64(float64(e.size) * f)
			small += e.size
		}
	}
	rest := max(0, p.opts.Bytes-small)
	for class, es := range p.bigs {
		var weights int64
		for _, e := range es {
			weights += e.size
		}
		for _, e := range es {
			e.size = int64(float64(e.size) / float64(weights) * bigShare[class] * float64(rest))
		}
	}
}

// baseLayer is a Debian-like system: about 45 % of the files.
func (p *planner) baseLayer() {
	p.beginLayer("base system")
	w := p.voc
	for _, d := range []string{"etc", "usr", "usr/bin", "usr/sbin", "usr/lib", "usr/share", "var", "var/lib", "var/log", "var/cache", "home", "opt", "srv", "proc", "sys", "dev", "run"} {
		p.dir(d, 0o755, 0)
	}
	p.dir("root", 0o700, 0)
	p.dir("tmp", 0o1777, 0)
	// usrmerge: nothing of a later layer goes through these.
	p.symlink("bin", "usr/bin")
	p.symlink("sbin", "usr/sbin")
	p.symlink("lib", "usr/lib")
	p.fixed("etc/os-release", osRelease, 0o644)
	p.fixed("etc/hostname", "ocifs-bench\n", 0o644)
	p.fixed("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv/app:/bin/sh\n", 0o644)
	p.fixed("etc/group", "root:x:0:\napp:x:1000:\n", 0o644)
	p.fixed("etc/shadow", "root:*:19000:0:99999:7:::\napp:!:19000:0:99999:7:::\n", 0o640)

	// /etc: configs, some in NAME.d directories.
	n := p.count(0.015, 8)
	var confDirs []string
	for range max(2, n/25) {
		d := p.unique("etc", w.word(), ".d")
		confDirs = append(confDirs, d)
		p.dir(d, 0o755, 0)
	}
	p.pkgDirs[0] = append(p.pkgDirs[0], confDirs...)
	for i := range n {
		dir := "etc"
		if i%2 == 1 {
			dir = confDirs[p.rng.IntN(len(confDirs))]
		}
		p.small(p.unique(dir, w.word(), ".conf"), fillText, 600, 0o644, 0)
	}

	// /usr/bin and /usr/sbin: executables, some symlinks and hardlinks.
	n = p.count(0.008, 10)
	var bins []*entry
	for i := range n {
		dir := "usr/bin"
		if i%5 == 0 {
			dir = "usr/sbin"
		}
		switch {
		case i%10 == 3 && len(bins) > 0:
			t := bins[p.rng.IntN(len(bins))]
			if path.Dir(t.name) == dir {
				p.symlink(p.unique(dir, w.word(), ""), path.Base(t.name))
			} else {
				p.symlink(p.unique(dir, w.word(), ""), "../"+strings.TrimPrefix(t.name, "usr/"))
			}
		case i%20 == 7 && len(bins) > 0:
			t := bins[p.rng.IntN(len(bins))]
			p.hardlink(p.unique(path.Dir(t.name), path.Base(t.name)+"-"+w.word(), ""), t)
		default:
			mode := int64(0o755)
			if i == 1 {
				mode = 0o4755 // one setuid binary, as su or passwd
			}
			bins = append(bins, p.big(p.unique(dir, w.word(), ""), classBin, fillCode, p.weight(1.2), mode, 0))
		}
	}

	// Shared libraries: libNAME.so.M.m.p with the .so.M and .so links.
	lib := "usr/lib/x86_64-linux-gnu"
	p.dir(lib, 0o755, 0)
	for range p.count(0.015/3, 3) {
		base := "lib" + w.word()
		maj := p.rng.IntN(9)
		real := p.unique(lib, base, fmt.Sprintf(".so.%d.%d.%d", maj, p.rng.IntN(20), p.rng.IntN(10)))
		p.big(real, classLib, fillCode, p.weight(1.5), 0o644, 0)
		soname := p.unique(lib, base, fmt.Sprintf(".so.%d", maj))
		p.symlink(soname, path.Base(real))
		p.symlink(p.unique(lib, base, ".so"), path.Base(soname))
		p.deletable[0] = append(p.deletable[0], soname)
	}

	// Docs: usr/share/doc/PKG/{copyright,changelog,README,examples/…}.
	n = p.count(0.06, 8)
	for i := 0; i < n; {
		pkg := p.unique("usr/share/doc", w.word(), "")
		p.pkgDirs[0] = append(p.pkgDirs[0], pkg)
		p.small(pkg+"/copyright", fillText, 1500, 0o644, 0)
		p.small(pkg+"/changelog.txt", fillText, 3000, 0o644, 0)
		i += 2
		for range p.rng.IntN(6) {
			sub := pkg
			if p.rng.IntN(3) == 0 {
				sub = pkg + "/examples"
			}
			p.small(p.unique(sub, w.word(), ".md"), fillText, 2000, 0o644, 0)
			i++
		}
	}

	// Man pages: small gzip files, so incompressible.
	n = p.count(0.04, 4)
	for range n {
		sec := 1 + p.rng.IntN(8)
		p.small(p.unique(fmt.Sprintf("usr/share/man/man%d", sec), w.word(), fmt.Sprintf(".%d.gz", sec)), fillRandom, 2500, 0o644, 0)
	}

	// Message catalogs.
	langs := []string{"de", "es", "fr", "it", "ja", "nl", "pl", "pt_BR", "ru", "sv", "uk", "zh_CN"}
	n = p.count(0.03, 4)
	for range n {
		l := langs[p.rng.IntN(len(langs))]
		p.small(p.unique("usr/share/locale/"+l+"/LC_MESSAGES", w.word(), ".mo"), fillCode, 6000, 0o644, 0)
	}

	// Headers.
	p.tree("usr/include", p.count(0.06, 4), 20, 4, w.word, func(dir string) {
		p.small(p.unique(dir, w.word(), ".h"), fillText, 5000, 0o644, 0)
	})

	// Data trees of packages (perl modules, icons, zoneinfo, …), deep.
	n = p.count(0.18, 8)
	pkgs := max(1, n/600)
	for i := range pkgs {
		root := p.unique("usr/share", w.word(), "")
		p.pkgDirs[0] = append(p.pkgDirs[0], root)
		exts := []string{".pm", ".svg", ".txt", ".xml", ".json"}
		ext := exts[i%len(exts)]
		f := fillText
		if ext == ".svg" {
			f = fillCode
		}
		p.tree(root, n/pkgs, 12, 9, w.word, func(dir string) {
			if p.rng.IntN(40) == 0 {
				p.symlink(p.unique(dir, w.word(), ext), "../"+w.word()+ext) // often dangling, as in real trees
				return
			}
			p.small(p.unique(dir, w.word(), ext), f, 2500, 0o644, 0)
		})
	}

	// dpkg's database.
	n = p.count(0.04, 3)
	for range n / 2 {
		pkg := w.word()
		p.small(p.unique("var/lib/dpkg/info", pkg, ".list"), fillText, 2000, 0o644, 0)
		p.small(p.unique("var/lib/dpkg/info", pkg, ".md5sums"), fillText, 3000, 0o644, 0)
	}
	p.small("var/lib/dpkg/status", fillText, 200000, 0o644, 0)
}

// runtimeLayer adds a Python tree and a deep node_modules, replaces
// some configs and deletes parts of the base: about 35 % of the files.
func (p *planner) runtimeLayer() {
	p.beginLayer("runtime")
	w := p.voc

	// Python: PKG/.../*.py with __init__.py and __pycache__/*.pyc.
	n := p.count(0.20, 8)
	py := "usr/lib/python3.11"
	for range max(1, n/400) {
		root := p.unique(py, w.word(), "")
		p.pkgDirs[1] = append(p.pkgDirs[1], root)
		dirs := p.tree(root, n/max(1, n/400)*3/4, 10, 6, w.word, func(dir string) {
			p.small(p.unique(dir, w.word(), ".py"), fillText, 4000, 0o644, 0)
		})
		for _, d := range dirs {
			p.small(d+"/__init__.py", fillText, 0, 0o644, 0) // empty
			for range 1 + p.rng.IntN(3) {
				p.small(p.unique(d+"/__pycache__", w.word(), ".cpython-311.pyc"), fillCode, 5000, 0o644, 0)
			}
		}
	}

	// node_modules, nested the way npm nests conflicting versions.
	n = p.count(0.14, 8)
	nm := "opt/app/node_modules"
	pkgs := max(1, n/150)
	for range pkgs {
		root := p.unique(nm, w.word(), "")
		p.pkgDirs[1] = append(p.pkgDirs[1], root)
		dirName := func() string {
			if p.rng.IntN(4) == 0 {
				return "node_modules"
			}
			return w.word()
		}
		var last string
		p.tree(root, n/pkgs, 8, 14, dirName, func(dir string) {
			if last != "" && p.rng.IntN(50) == 0 {
				rel := relPath(dir, last)
				p.symlink(p.unique(dir, w.word(), ".js"), rel)
				return
			}
			last = p.unique(dir, w.word(), ".js")
			p.small(last, fillText, 3000, 0o644, 0)
		})
		p.symlink(p.unique(nm+"/.bin", w.word(), ""), "../"+path.Base(root)+"/index.js")
	}

	// One whole package's docs and one data tree of the base deleted,
	// one /etc/NAME.d made opaque with new contents; then single files
	// replaced and deleted. Directories go first: a layer must not both
	// delete a directory and have entries under it.
	p.deleteDir(0, "usr/share/doc/")
	p.deleteDir(0, "usr/share/")
	p.opaqueDir(0, "etc/", 5, ".conf")
	for range p.count(0.002, 1) {
		if name := p.pickLive(p.deletable[0], "usr", "var"); strings.HasSuffix(name, ".conf") {
			p.small(name, fillText, 800, 0o644, 0)
		}
	}
	for range p.count(0.005, 2) {
		if name := p.pickLive(p.deletable[0], "etc"); name != "" {
			p.whiteout(name)
		}
	}
	n = p.count(0.005, 2)
	for range n {
		p.small(p.unique("var/lib/dpkg/info", w.word(), ".list"), fillText, 2000, 0o644, 0)
	}
}

// appLayer adds the application: a deep source tree, static assets,
// native libraries, a few huge data files, and deletes parts of the
// runtime: about 18 % of the files.
func (p *planner) appLayer() {
	p.beginLayer("application")
	w := p.voc
	app := "srv/app"
	p.dir(app, 0o755, 1000)

	n := p.count(0.10, 8)
	p.tree(app+"/src", n, 10, 12, w.word, func(dir string) {
		p.small(p.unique(dir, w.word(), ".ts"), fillText, 5000, 0o644, 1000)
	})
	p.pkgDirs[2] = append(p.pkgDirs[2], app+"/src")

	n = p.count(0.04, 4)
	statics := p.tree(app+"/static", n, 15, 4, w.word, func(dir string) {
		exts := []string{".png", ".woff2", ".jpg", ".css", ".js"}
		ext := exts[p.rng.IntN(len(exts))]
		if ext == ".css" || ext == ".js" {
			p.small(p.unique(dir, w.word(), ext), fillText, 6000, 0o644, 1000)
		} else {
			p.small(p.unique(dir, w.word(), ext), fillRandom, 12000, 0o644, 1000)
		}
	})
	p.pkgDirs[2] = append(p.pkgDirs[2], statics[1:]...)

	n = p.count(0.01, 8)
	var libs []*entry
	for i := range n {
		if i%8 == 5 && len(libs) > 0 {
			t := libs[p.rng.IntN(len(libs))]
			p.hardlink(p.unique(path.Dir(t.name), path.Base(t.name)+"-"+w.word(), ""), t)
			continue
		}
		libs = append(libs, p.big(p.unique(app+"/lib", "lib"+w.word(), ".so"), classAppLib, fillCode, p.weight(1.5), 0o755, 1000))
	}
	p.big(app+"/bin/server", classAppLib, fillCode, 20, 0o755, 1000)
	p.symlink(app+"/bin/app", "server")
	p.symlink(app+"/current", ".")

	// A few very large files: models, archives, databases.
	for i := range max(4, p.opts.Files/25000) {
		p.big(fmt.Sprintf("%s/data/blob-%03d.bin", app, i), classData, fillRandom, p.weight(0.5), 0o644, 1000)
	}

	// One package of node_modules removed, another replaced wholesale
	// (opaque), then single files of the runtime and the base deleted.
	p.deleteDir(1, "opt/app/node_modules/")
	p.opaqueDir(1, "opt/app/node_modules/", 20, ".js")
	for range p.count(0.005, 2) {
		if name := p.pickLive(p.deletable[1]); name != "" {
			p.whiteout(name)
		}
	}
	if name := p.pickLive(p.deletable[0], "etc"); name != "" {
		p.whiteout(name)
	}
}

// configLayer is a small last layer: configuration, a replaced file,
// a deletion in each lower layer and an opaque asset directory.
func (p *planner) configLayer() {
	p.beginLayer("configuration")
	w := p.voc
	n := p.count(0.02, 4)
	for range n {
		p.small(p.unique("srv/app/config", w.word(), ".json"), fillText, 1200, 0o644, 1000)
	}
	p.opaqueDir(2, "srv/app/static/", 3, ".css")
	if name := p.pickLive(p.deletable[0], "usr", "var"); name != "" {
		p.small(name, fillText, 700, 0o644, 0)
	}
	for l := range 3 {
		if name := p.pickLive(p.deletable[l], "etc"); name != "" {
			p.whiteout(name)
		}
	}
}

// deleteDir whites out one live directory of layer l under prefix.
func (p *planner) deleteDir(l int, prefix string) {
	var c []string
	for _, d := range p.pkgDirs[l] {
		if strings.HasPrefix(d, prefix) {
			c = append(c, d)
		}
	}
	if name := p.pickLive(c); name != "" {
		p.whiteout(name)
	}
}

// opaqueDir makes one live directory of layer l under prefix opaque and
// puts n new files into it.
func (p *planner) opaqueDir(l int, prefix string, n int, ext string) {
	var c []string
	for _, d := range p.pkgDirs[l] {
		if strings.HasPrefix(d, prefix) {
			c = append(c, d)
		}
	}
	name := p.pickLive(c)
	if name == "" {
		return
	}
	p.opaque(name)
	for range n {
		p.small(p.unique(name, p.voc.word(), ext), fillText, 1500, 0o644, 0)
	}
}

// weight draws a big file's share of the byte budget.
func (p *planner) weight(sigma float64) float64 {
	return math.Exp(sigma * p.rng.NormFloat64())
}

// relPath is target relative to dir, both relative to the root.
func relPath(dir, target string) string {
	d := strings.Split(dir, "/")
	t := strings.Split(target, "/")
	i := 0
	for i < len(d) && i < len(t)-1 && d[i] == t[i] {
		i++
	}
	return strings.Repeat("../", len(d)-i) + strings.Join(t[i:], "/")
}

// vocabulary is a seeded list of made-up words drawn with a Zipf-like
// skew, as words are in real text and file names.
type vocabulary struct {
	rng   *rand.Rand
	words []string
	table [1 << 16]uint16 // uniform 16 bits → word index, skewed
}

func newVocabulary(rng *rand.Rand) *vocabulary {
	const consonants, vowels = "bdfghklmnprstvz", "aeiou"
	v := &vocabulary{rng: rng}
	seen := map[string]bool{}
	for len(v.words) < 2048 {
		var b []byte
		for range 1 + rng.IntN(4) {
			b = append(b, consonants[rng.IntN(len(consonants))], vowels[rng.IntN(len(vowels))])
		}
		if s := string(b); !seen[s] {
			seen[s] = true
			v.words = append(v.words, s)
		}
	}
	// Weight 1/(rank+8): common words are common, the tail is long.
	var total float64
	for i := range v.words {
		total += 1 / float64(i+8)
	}
	var acc float64
	j := 0
	for i := range v.words {
		acc += 1 / float64(i+8)
		for end := int(acc / total * (1 << 16)); j < end && j < len(v.table); j++ {
			v.table[j] = uint16(i)
		}
	}
	for ; j < len(v.table); j++ {
		v.table[j] = uint16(len(v.words) - 1)
	}
	return v
}

// word draws one word with the planner's random stream.
func (v *vocabulary) word() string { return v.words[v.table[uint16(v.rng.Uint32())]] }
