package bot

// matchMode says where in the User-Agent a pattern may match.
type matchMode uint8

const (
	anywhere matchMode = iota // substring anywhere
	prefix                    // UA starts with the literal
	exact                     // UA equals the literal (ignoring surrounding blanks)
)

// pattern is one case-insensitive User-Agent signature.
type pattern struct {
	lit    string // lowercase ASCII literal
	reason Reason
	// agent is the static name reported in Verdict.Agent; "" marks a generic
	// token (e.g. "bot") that only counts when no named identity matched.
	agent string
	mode  matchMode
	// check, if set, vets a literal match at ua[start:end] (context rules such
	// as word boundaries that a plain substring cannot express).
	check func(ua []byte, start, end int) bool
}

// patterns is the signature table. Order matters only for picking Verdict.Agent
// among matches of the same reason: earlier entries win, so specific
// signatures precede the generic ones they contain (iMessage before
// facebookexternalhit, TelegramBot before the "TwitterBot" it claims to be
// like).
//
// Sources are the vendors' own documentation where it exists (Snap, Google,
// Microsoft, Apple, Meta) and the isbot project's browser/crawler fixtures for
// the in-app browser UAs that must stay human. Several vendor tokens are
// deliberately narrow because the same word appears in human in-app browsers:
//   - "Snapchat/12.x" is the Snapchat in-app browser; the preview fetcher is
//     "Snap URL Preview Service".
//   - "Viber/11.x" is appended by Viber's in-app browser; only a UA that *is*
//     "Viber" or starts with "Viber/" (native CFNetwork fetch) is the preview.
//   - "[Pinterest/iOS]" and "[LinkedInApp]" are in-app browsers; the bots are
//     "Pinterest/0.x", "Pinterestbot" and "LinkedInBot".
//   - "WhatsApp/2.x" is only matched at the start, as WhatsApp's fetcher sends
//     it bare ("WhatsApp/2.23.20.0 A").
//   - Outlook's "ms-office; MSOffice 16" UA is the embedded browser a human
//     clicks through, so only Office's documented discovery requests count.
var patterns = [...]pattern{
	// --- Link previews -------------------------------------------------
	// iOS/macOS Messages (LinkPresentation) appends this triple to a Safari UA.
	{lit: "facebookexternalhit/1.1 facebot twitterbot/1.0", reason: ReasonPreview, agent: "imessage"},
	{lit: "facebookexternalhit", reason: ReasonPreview, agent: "facebook"},
	{lit: "facebot", reason: ReasonPreview, agent: "facebook"},
	{lit: "meta-externalfetcher", reason: ReasonPreview, agent: "facebook"},
	{lit: "whatsapp/", reason: ReasonPreview, agent: "whatsapp", mode: prefix},
	{lit: "telegrambot", reason: ReasonPreview, agent: "telegram"},
	{lit: "twitterbot", reason: ReasonPreview, agent: "twitter"},
	{lit: "linkedinbot", reason: ReasonPreview, agent: "linkedin"},
	{lit: "pinterestbot", reason: ReasonPreview, agent: "pinterest"},
	{lit: "pinterest/0.", reason: ReasonPreview, agent: "pinterest"},
	{lit: "slackbot", reason: ReasonPreview, agent: "slack"}, // also Slackbot-LinkExpanding
	{lit: "slack-imgproxy", reason: ReasonPreview, agent: "slack"},
	{lit: "discordbot", reason: ReasonPreview, agent: "discord"},
	{lit: "skypeuripreview", reason: ReasonPreview, agent: "skype"}, // Skype and Teams
	{lit: "viber/", reason: ReasonPreview, agent: "viber", mode: prefix},
	{lit: "viber", reason: ReasonPreview, agent: "viber", mode: exact},
	{lit: "snap url preview", reason: ReasonPreview, agent: "snapchat"},
	{lit: "bingpreview", reason: ReasonPreview, agent: "bingpreview"},
	{lit: "microsoftpreview", reason: ReasonPreview, agent: "microsoftpreview"}, // Teams, Outlook, Copilot
	// Google Messages (RCS/SMS) renders link previews with this token.
	{lit: "google-pagerenderer", reason: ReasonPreview, agent: "google-pagerenderer"},
	{lit: "google-read-aloud", reason: ReasonPreview, agent: "google-read-aloud"},
	{lit: "google-speakr", reason: ReasonPreview, agent: "google-read-aloud"}, // deprecated name
	{lit: "embedly", reason: ReasonPreview, agent: "embedly"},
	{lit: "iframely", reason: ReasonPreview, agent: "iframely"},
	{lit: "redditbot", reason: ReasonPreview, agent: "reddit"},
	{lit: "mastodon/", reason: ReasonPreview, agent: "mastodon"},
	{lit: "bitlybot", reason: ReasonPreview, agent: "bitly"},
	{lit: "vkshare", reason: ReasonPreview, agent: "vk"},
	{lit: "quora link preview", reason: ReasonPreview, agent: "quora"},
	{lit: "yahoo:linkexpander", reason: ReasonPreview, agent: "yahoo-linkexpander"},
	{lit: "preview", reason: ReasonPreview},

	// --- Crawlers ------------------------------------------------------
	{lit: "googlebot", reason: ReasonCrawler, agent: "googlebot"},
	{lit: "google-inspectiontool", reason: ReasonCrawler, agent: "google-inspectiontool"},
	{lit: "applebot", reason: ReasonCrawler, agent: "applebot"},
	{lit: "bingbot", reason: ReasonCrawler, agent: "bingbot"},
	{lit: "yahoo! slurp", reason: ReasonCrawler, agent: "yahoo"},
	{lit: "yandexbot", reason: ReasonCrawler, agent: "yandex"},
	{lit: "yandex.com/bots", reason: ReasonCrawler, agent: "yandex"},
	{lit: "baiduspider", reason: ReasonCrawler, agent: "baidu"},
	{lit: "duckduckbot", reason: ReasonCrawler, agent: "duckduckbot"},
	{lit: "meta-externalagent", reason: ReasonCrawler, agent: "meta"},
	{lit: "scrapy/", reason: ReasonCrawler, agent: "scrapy"},
	{lit: "bot", reason: ReasonCrawler, check: botToken},
	{lit: "crawl", reason: ReasonCrawler},
	{lit: "spider", reason: ReasonCrawler},
	{lit: "slurp", reason: ReasonCrawler},

	// --- HTTP libraries ------------------------------------------------
	{lit: "curl/", reason: ReasonHTTPLibrary, agent: "curl"},
	{lit: "wget/", reason: ReasonHTTPLibrary, agent: "wget"},
	{lit: "python-requests", reason: ReasonHTTPLibrary, agent: "python-requests"},
	{lit: "python-urllib", reason: ReasonHTTPLibrary, agent: "python-urllib"},
	{lit: "python-httpx", reason: ReasonHTTPLibrary, agent: "python-httpx"},
	{lit: "aiohttp", reason: ReasonHTTPLibrary, agent: "aiohttp"},
	{lit: "go-http-client", reason: ReasonHTTPLibrary, agent: "go-http-client"},
	// Only a bare okhttp UA: Android apps built on okhttp often set their own
	// UA and mention okhttp later on.
	{lit: "okhttp/", reason: ReasonHTTPLibrary, agent: "okhttp", mode: prefix},
	// Before "java/": Apache-HttpClient names the JVM it runs on.
	{lit: "apache-httpclient", reason: ReasonHTTPLibrary, agent: "apache-httpclient"},
	{lit: "java/", reason: ReasonHTTPLibrary, agent: "java"},
	{lit: "libwww-perl", reason: ReasonHTTPLibrary, agent: "libwww-perl"},
	{lit: "axios/", reason: ReasonHTTPLibrary, agent: "axios"},
	{lit: "node-fetch", reason: ReasonHTTPLibrary, agent: "node-fetch"},
	{lit: "undici", reason: ReasonHTTPLibrary, agent: "node"},
	{lit: "node", reason: ReasonHTTPLibrary, agent: "node", mode: exact}, // Node.js fetch default
	{lit: "postmanruntime", reason: ReasonHTTPLibrary, agent: "postman"},
	{lit: "guzzlehttp", reason: ReasonHTTPLibrary, agent: "guzzle"},
	{lit: "http.rb/", reason: ReasonHTTPLibrary, agent: "http-rb"},

	// --- Headless browsers ---------------------------------------------
	{lit: "headlesschrome", reason: ReasonHeadless, agent: "headlesschrome"},
	{lit: "phantomjs", reason: ReasonHeadless, agent: "phantomjs"},
	{lit: "headless", reason: ReasonHeadless},

	// --- Scanners ------------------------------------------------------
	// Office sends a HEAD with this UA before opening a clicked link.
	{lit: "microsoft office existence discovery", reason: ReasonScanner, agent: "ms-office-discovery"},
	{lit: "microsoft office protocol discovery", reason: ReasonScanner, agent: "ms-office-discovery"},
	{lit: "google-safety", reason: ReasonScanner, agent: "google-safety"},
	{lit: "kaspersky lab cfr link resolver", reason: ReasonScanner, agent: "kaspersky"},
	{lit: "nmap scripting engine", reason: ReasonScanner, agent: "nmap"},
	{lit: "scan", reason: ReasonScanner, check: scanToken},
}

// botToken implements isbot's "(?<! cu)bots?(?:\b|_)": the "bot" must end a
// word ("Googlebot/", "robots)", "bot_x") so that words merely containing it
// ("turbotabbee", "Botim") stay human, and the Cubot phone brand ("CUBOT_P20",
// "CUBOT MAX") is excluded.
func botToken(ua []byte, start, end int) bool {
	if end < len(ua) && ua[end]|0x20 == 's' {
		end++
	}
	if end < len(ua) && isAlnum(ua[end]) {
		return false
	}
	if start >= 2 && ua[start-2]|0x20 == 'c' && ua[start-1]|0x20 == 'u' &&
		(start == 2 || !isAlpha(ua[start-3])) {
		return false
	}
	return true
}

// scanToken excludes CamScanner, a document-scanner app with an in-app browser.
func scanToken(ua []byte, start, _ int) bool {
	return !(start >= 3 && ua[start-3]|0x20 == 'c' && ua[start-2]|0x20 == 'a' && ua[start-1]|0x20 == 'm')
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isAlnum(c byte) bool { return isAlpha(c) || c >= '0' && c <= '9' }
