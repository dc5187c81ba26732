#!/usr/bin/env python3
"""Measures the web application in headless Chromium over WebDriver (stdlib
only: the W3C WebDriver protocol is plain JSON over HTTP).

Figures (each the median of --runs fresh page loads unless said otherwise):
* first page: bytes (compressed, as transferred) of everything the login
  page loads, from the Resource Timing API;
* login page to interactive: navigation start to the app's
  `orgboard:login` mark (form rendered, focus in the Email field);
* board of N cards: navigation start to the `orgboard:board` mark plus two
  animation frames (the cards painted), and how long the main thread was
  blocked after it (a 50 ms probe timer's lateness);
* drag: browser A moves a card (keyboard Alt+Arrow, one move request), and
  browser B's MutationObserver sees the card in its new place; the delay
  between A's request and B's DOM, over --moves moves, as p50/p99.
"""
import argparse, base64, json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'


def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p


class Browser:
    def __init__(self, driver_port, width=1280, height=900):
        self.port = driver_port
        self.profile = tempfile.mkdtemp()
        args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                '--disable-component-update', '--no-first-run', f'--user-data-dir={self.profile}',
                f'--window-size={width},{height}']
        caps = {'capabilities': {'alwaysMatch': {'browserName': 'chrome', 'goog:chromeOptions': {
            'binary': os.environ.get('ORGBOARD_CHROMIUM', '/usr/bin/chromium'), 'args': args}}}}
        self.sid = self.req('POST', '/session', caps)['value']['sessionId']

    def req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        r = urllib.request.Request(f'http://127.0.0.1:{self.port}{path}', data=data, method=method,
                                   headers={'Content-Type': 'application/json'})
        try:
            out = json.load(urllib.request.urlopen(r, timeout=120))
        except urllib.error.HTTPError as e:
            out = json.load(e)
            raise RuntimeError(f'WebDriver {method} {path}: {out}')
        return out

    def s(self, method, path, body=None):
        return self.req(method, f'/session/{self.sid}{path}', body)

    def go(self, url):
        self.s('POST', '/url', {'url': url})

    def js(self, script, *args):
        return self.s('POST', '/execute/sync', {'script': script, 'args': list(args)})['value']

    def wait(self, cond, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.js('return ' + cond):
                return
            time.sleep(0.02)
        raise RuntimeError('timed out waiting for ' + cond)

    def keys(self, *keys):
        down = [{'type': 'keyDown', 'value': k} for k in keys]
        up = [{'type': 'keyUp', 'value': k} for k in reversed(keys)]
        self.s('POST', '/actions', {'actions': [{'type': 'key', 'id': 'kb', 'actions': down + up}]})

    def quit(self):
        try:
            self.s('DELETE', '')
        except Exception:
            pass


class Api:
    def __init__(self, base):
        self.base = base
        self.token = None

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {'Content-Type': 'application/json'}
        if self.token:
            headers['Authorization'] = f'Bearer {self.token}'
        r = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(r, timeout=60) as res:
            text = res.read()
            return json.loads(text) if text else None


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--url', required=True)
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--moves', type=int, default=60)
    ap.add_argument('--sizes', default='1000,10000')
    ap.add_argument('--lists', type=int, default=5)
    a = ap.parse_args()
    base = a.url.rstrip('/')
    driver_port = free_port()
    driver = subprocess.Popen([os.environ.get('ORGBOARD_CHROMEDRIVER', 'chromedriver'), f'--port={driver_port}'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{driver_port}/status', timeout=1); break
            except Exception:
                time.sleep(0.1)
        run(a, base, driver_port)
    finally:
        driver.terminate()


def run(a, base, driver_port):
    email, password = f'bench{int(time.time())}@example.com', 'correct horse battery staple'
    api = Api(base)
    s = api.call('POST', '/api/v1/auth/signup', {'email': email, 'password': password, 'name': 'Bench'})
    api.token = s['access_token']
    org = api.call('GET', '/api/v1/orgs')['items'][0]
    boards = {}
    for n in [int(x) for x in a.sizes.split(',') if x]:
        b = api.call('POST', f"/api/v1/orgs/{org['id']}/boards", {'name': f'{n} cards'})
        lists = [api.call('POST', f"/api/v1/orgs/{org['id']}/boards/{b['id']}/lists", {'name': f'List {i}'}) for i in range(a.lists)]
        t0 = time.time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: api.call('POST', f"/api/v1/orgs/{org['id']}/lists/{lists[i % a.lists]['id']}/tasks",
                                               {'title': f'Card {i}', 'priority': ['low', 'medium', 'high', 'urgent'][i % 4]}), range(n)))
        print(f'seeded a board of {n} cards in {time.time() - t0:.1f} s', file=sys.stderr)
        boards[n] = b['id']

    results = {}
    br = Browser(driver_port)
    try:
        # First page: everything the login page transfers, cold cache.
        br.go(base + '/login'); br.wait("document.getElementById('main').dataset.page==='login'")
        time.sleep(0.3)
        sizes = br.js("""return [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
            .map(e => [e.name, e.transferSize, e.encodedBodySize, e.decodedBodySize])""")
        results['first_page_bytes'] = sum(x[2] for x in sizes) + 0
        results['first_page_bytes_decoded'] = sum(x[3] for x in sizes)
        results['first_page_requests'] = len(sizes)
        login_ms = []
        for _ in range(a.runs):
            br.go(base + '/login'); br.wait("document.getElementById('main').dataset.page==='login'")
            login_ms.append(br.js("return performance.getEntriesByName('orgboard:login')[0].startTime"))
        results['login_to_interactive_ms'] = statistics.median(login_ms)
        # Sign in through the page, then open each board.
        br.js("""const set=(l,v)=>{const e=document.getElementById([...document.querySelectorAll('label')].find(x=>x.textContent.trim()===l).htmlFor); e.value=v;};
                 set('Email', arguments[0]); set('Password', arguments[1]);
                 [...document.querySelectorAll('button')].find(b=>b.textContent==='Log in').click();""", email, password)
        br.wait("document.getElementById('main').dataset.page==='boards'")
        for n, board in boards.items():
            open_ms, blocked_ms, painted = [], [], 0
            for _ in range(a.runs):
                br.go(f"{base}/o/{org['slug']}/b/{board}")
                br.wait("document.getElementById('main').dataset.page==='board'", timeout=60)
                r = br.s('POST', '/execute/async', {'script': """const done = arguments[0];
                    const mark = performance.getEntriesByName('orgboard:board')[0].startTime;
                    requestAnimationFrame(() => requestAnimationFrame(() => {
                      const painted = performance.now();
                      const t0 = performance.now();
                      setTimeout(() => done([mark, painted, performance.now() - t0 - 50,
                        document.querySelectorAll('.card').length]), 50);
                    }));""", 'args': []})['value']
                open_ms.append(r[1]); blocked_ms.append(max(0, r[2])); painted = r[3]
            results[f'board_{n}_open_ms'] = statistics.median(open_ms)
            results[f'board_{n}_blocked_after_ms'] = statistics.median(blocked_ms)
            results[f'board_{n}_cards_painted'] = painted
    finally:
        br.quit()

    # Drag latency between two browsers on a small board.
    small = api.call('POST', f"/api/v1/orgs/{org['id']}/boards", {'name': 'drag'})
    lists = [api.call('POST', f"/api/v1/orgs/{org['id']}/boards/{small['id']}/lists", {'name': n}) for n in ('A', 'B')]
    for i in range(5):
        api.call('POST', f"/api/v1/orgs/{org['id']}/lists/{lists[0]['id']}/tasks", {'title': f'c{i}'})
    ba, bb = Browser(driver_port), Browser(driver_port)
    try:
        for b in (ba, bb):
            b.go(base + '/login'); b.wait("document.getElementById('main').dataset.page==='login'")
            b.js("""const set=(l,v)=>{const e=document.getElementById([...document.querySelectorAll('label')].find(x=>x.textContent.trim()===l).htmlFor); e.value=v;};
                 set('Email', arguments[0]); set('Password', arguments[1]);
                 [...document.querySelectorAll('button')].find(b=>b.textContent==='Log in').click();""", email, password)
            b.wait("document.getElementById('main').dataset.page==='boards'")
            b.go(f"{base}/o/{org['slug']}/b/{small['id']}")
            b.wait("document.getElementById('main').dataset.page==='board' && document.querySelector('.live-state.live')")
        # B records when the first list's first card changes.
        bb.js("""window.__seen = []; const ul = document.querySelector('section.list ul.cards');
            new MutationObserver(() => { const f = ul.querySelector('.card .card-title');
              window.__seen.push([performance.timeOrigin + performance.now(), f && f.textContent]); })
              .observe(document.querySelector('.lists'), {childList: true, subtree: true});""")
        # A stamps each move request.
        ba.js("""window.__sent = []; const orig = window.fetch; window.fetch = (u, i) => {
            if (String(u).endsWith('/move')) window.__sent.push(performance.timeOrigin + performance.now());
            return orig(u, i); };""")
        delays = []
        for i in range(a.moves):
            first = ba.js("return document.querySelector('section.list .card .card-title').textContent")
            ba.js("document.querySelector('section.list .card').focus()")
            bb.js("window.__seen = []")
            ba.keys('\ue00a', '\ue015')  # Alt+ArrowDown: the first card goes one down
            bb.wait(f"window.__seen.some(s => s[1] !== {json.dumps(first)})", timeout=10)
            sent = ba.js("return window.__sent[window.__sent.length - 1]")
            seen = bb.js(f"return window.__seen.find(s => s[1] !== {json.dumps(first)})[0]")
            delays.append(seen - sent)
        results['drag_seen_by_other_p50_ms'] = pct(delays, 50)
        results['drag_seen_by_other_p99_ms'] = pct(delays, 99)
        results['drag_moves'] = len(delays)
    finally:
        ba.quit(); bb.quit()
    for k, v in results.items():
        print(f'{k:36} {v:.1f}' if isinstance(v, float) else f'{k:36} {v}')


if __name__ == '__main__':
    main()
