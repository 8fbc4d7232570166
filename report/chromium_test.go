package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loadedProbe marks, once the page has loaded, each figure image that
// decoded (naturalWidth > 0) and counts them and the summary table's rows.
const loadedProbe = `<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('figure img'), ok = 0;
  imgs.forEach(function (img) {
    if (img.complete && img.naturalWidth > 0) { img.setAttribute('data-loaded', String(img.naturalWidth)); ok++; }
  });
  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);
  var t = document.getElementById('summary-table');
  document.body.setAttribute('data-table-rows', t ? String(t.tBodies[0].rows.length) : 'none');
});
</script>
</body>`

// TestHTMLInChromium opens the report page in headless Chromium (Debian's
// chromium package) and checks that every figure decodes and that the
// summary table is there with its numbers. The page is opened from a
// directory of its own, so it cannot lean on the figure files beside it.
func TestHTMLInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium); skipping the browser check of the report page")
	}
	runs, err := Load(sweepFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), runs, filepath.Join(t.TempDir(), "report"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(res.HTML)
	if err != nil {
		t.Fatal(err)
	}
	alone := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(alone, []byte(strings.Replace(string(html), "</body>", loadedProbe, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// A guard against a hung browser, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
		"--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000", "--dump-dom", "file://"+alone)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	page := string(dom)
	n := len(res.Figures)
	if !strings.Contains(page, `data-images-loaded="`+strconv.Itoa(n)+"/"+strconv.Itoa(n)+`"`) {
		m := regexp.MustCompile(`data-images-loaded="[^"]*"`).FindString(page)
		t.Errorf("figures decoded in Chromium: %s, want %d/%d", m, n, n)
	}
	if got := len(regexp.MustCompile(`<img [^>]*data-loaded="[1-9][0-9]*"`).FindAllString(page, -1)); got != n {
		t.Errorf("%d images marked loaded, want %d", got, n)
	}
	if !strings.Contains(page, `data-table-rows="3"`) {
		t.Errorf("summary table rows: %s, want 3", regexp.MustCompile(`data-table-rows="[^"]*"`).FindString(page))
	}
	for _, want := range []string{"<td>0.500 ± 0.141</td>", "<td>0.650 ± 0.071</td>", "Test accuracy vs round (data.alpha=1)", "<h2>data.alpha=100</h2>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page in Chromium lacks %q", want)
		}
	}
}
