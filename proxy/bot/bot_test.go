package bot

import (
	"strings"
	"testing"
)

// botUAs are real User-Agent strings of automated clients with the verdict
// Classify must reach for a GET with no purpose headers.
var botUAs = []struct {
	name    string
	ua      string
	reasons Reason
	agent   string
}{
	// Link previews.
	{"iMessage macOS", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0", ReasonPreview, "imessage"},
	{"iMessage iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1 facebookexternalhit/1.1 Facebot Twitterbot/1.0", ReasonPreview, "imessage"},
	{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", ReasonPreview, "facebook"},
	{"facebookexternalhit bare", "facebookexternalhit/1.1", ReasonPreview, "facebook"},
	{"Facebot", "Facebot", ReasonPreview, "facebook"},
	{"meta-externalfetcher", "meta-externalfetcher/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)", ReasonPreview, "facebook"},
	{"Twitterbot", "Twitterbot/1.0", ReasonPreview, "twitter"},
	{"LinkedInBot", "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)", ReasonPreview, "linkedin"},
	{"LinkedInBot Jakarta", "LinkedInBot/1.0 (compatible; Mozilla/5.0; Jakarta Commons-HttpClient/3.1 +http://www.linkedin.com)", ReasonPreview, "linkedin"},
	{"Pinterest", "Pinterest/0.2 (+https://www.pinterest.com/bot.html)", ReasonPreview, "pinterest"},
	{"Pinterestbot", "Mozilla/5.0 (compatible; Pinterestbot/1.0; +http://www.pinterest.com/bot.html)", ReasonPreview, "pinterest"},
	{"WhatsApp Android", "WhatsApp/2.23.20.0 A", ReasonPreview, "whatsapp"},
	{"WhatsApp iOS", "WhatsApp/2.21.12.21 i", ReasonPreview, "whatsapp"},
	{"WhatsApp lowercase", "whatsapp/2.2123.8 n", ReasonPreview, "whatsapp"},
	{"Telegram", "TelegramBot (like TwitterBot)", ReasonPreview, "telegram"},
	{"Slackbot-LinkExpanding", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", ReasonPreview, "slack"},
	{"Slack-ImgProxy", "Slack-ImgProxy (+https://api.slack.com/robots)", ReasonPreview, "slack"},
	{"Slackbot", "Slackbot 1.0 (+https://api.slack.com/robots)", ReasonPreview, "slack"},
	{"Discordbot", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", ReasonPreview, "discord"},
	{"SkypeUriPreview", "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", ReasonPreview, "skype"},
	{"SkypeUriPreview email", "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com", ReasonPreview, "skype"},
	{"Viber iOS fetch", "Viber/12.8.0.1 CFNetwork/1121.2.2 Darwin/19.3.0", ReasonPreview, "viber"},
	{"Viber bare", "Viber", ReasonPreview, "viber"},
	{"Snap URL Preview", "Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots", ReasonPreview, "snapchat"},
	{"BingPreview", "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/534+ (KHTML, like Gecko) BingPreview/1.0b", ReasonPreview, "bingpreview"},
	{"MicrosoftPreview", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; MicrosoftPreview/2.0; +https://aka.ms/MicrosoftPreview) Chrome/120.0.0.0 Safari/537.36", ReasonPreview, "microsoftpreview"},
	{"MicrosoftPreview short", "Mozilla/5.0 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview", ReasonPreview, "microsoftpreview"},
	{"Google Messages", "Mozilla/5.0 Google-PageRenderer Google (+https://developers.google.com/+/web/snippet/)", ReasonPreview, "google-pagerenderer"},
	{"Google-PageRenderer mobile", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 (compatible; Google-PageRenderer Google (+https://developers.google.com/+/web/snippet/))", ReasonPreview, "google-pagerenderer"},
	{"Google-Read-Aloud", "Mozilla/5.0 (Linux; Android 7.0; SM-G930V Build/NRD90M) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.125 Mobile Safari/537.36 (compatible; Google-Read-Aloud; +https://support.google.com/webmasters/answer/1061943)", ReasonPreview, "google-read-aloud"},
	{"google-speakr", "Mozilla/5.0 (Linux; Android 5.0; SM-G920A) AppleWebKit (KHTML, like Gecko) Chrome Mobile Safari (compatible; google-speakr)", ReasonPreview, "google-read-aloud"},
	{"Embedly", "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)", ReasonPreview, "embedly"},
	{"Iframely", "Iframely/1.3.1 (+https://iframely.com/docs/about) Atlassian", ReasonPreview, "iframely"},
	{"redditbot", "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)", ReasonPreview, "reddit"},
	{"Mastodon", "http.rb/5.1.1 (Mastodon/4.1.2; +https://mastodon.social/)", ReasonPreview, "mastodon"},
	{"Mastodon old", "http.rb/3.2.0 (Mastodon/2.4.3; +https://uwu.social/)", ReasonPreview, "mastodon"},
	{"bitlybot", "bitlybot/3.0 (+http://bit.ly/)", ReasonPreview, "bitly"},
	{"vkShare", "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)", ReasonPreview, "vk"},
	{"Quora", "Quora Link Preview/1.0 (http://www.quora.com)", ReasonPreview, "quora"},
	{"Yahoo LinkExpander", "Yahoo:LinkExpander:Slingstone", ReasonPreview, "yahoo-linkexpander"},
	{"Google Web Preview", "Mozilla/5.0 (X11; Linux x86_64)  AppleWebKit/537.36 (KHTML, like Gecko; Google Web Preview)  Chrome/84.0.4147.108 Safari/537.36", ReasonPreview, ""},
	{"Bitrix", "Bitrix link preview", ReasonPreview, ""},

	// Crawlers.
	{"Applebot", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", ReasonCrawler, "applebot"},
	{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ReasonCrawler, "googlebot"},
	{"Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/80.0.3987.92 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", ReasonCrawler, "googlebot"},
	{"Google-InspectionTool", "Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)", ReasonCrawler, "google-inspectiontool"},
	{"bingbot", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", ReasonCrawler, "bingbot"},
	{"Yahoo Slurp", "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)", ReasonCrawler, "yahoo"},
	{"YandexBot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", ReasonCrawler, "yandex"},
	{"YandexImages", "Mozilla/5.0 (compatible; YandexImages/3.0; +http://yandex.com/bots)", ReasonCrawler, "yandex"},
	{"Baiduspider", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", ReasonCrawler, "baidu"},
	{"DuckDuckBot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", ReasonCrawler, "duckduckbot"},
	{"meta-externalagent", "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)", ReasonCrawler, "meta"},
	{"AhrefsBot generic", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", ReasonCrawler, ""},
	{"PetalBot generic", "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)", ReasonCrawler, ""},
	{"Bytespider generic", "Mozilla/5.0 (Linux; Android 6.0; Nexus 5 Build/MRA58N) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.5668.1446 Mobile Safari/537.36; Bytespider;bytespider@bytedance.com", ReasonCrawler, ""},
	{"CCBot generic", "CCBot/2.0 (http://commoncrawl.org/faq/)", ReasonCrawler, ""},
	{"AdsBot generic", "AdsBot-Google (+http://www.google.com/adsbot.html)", ReasonCrawler, ""},
	{"UptimeRobot generic", "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", ReasonCrawler, ""},
	{"Scrapy", "Scrapy/2.11.0 (+https://scrapy.org)", ReasonCrawler, "scrapy"},

	// HTTP libraries.
	{"curl", "curl/8.4.0", ReasonHTTPLibrary, "curl"},
	{"Wget", "Wget/1.21.4", ReasonHTTPLibrary, "wget"},
	{"python-requests", "python-requests/2.31.0", ReasonHTTPLibrary, "python-requests"},
	{"Python-urllib", "Python-urllib/3.11", ReasonHTTPLibrary, "python-urllib"},
	{"python-httpx", "python-httpx/0.27.0", ReasonHTTPLibrary, "python-httpx"},
	{"aiohttp", "Python/3.11 aiohttp/3.9.5", ReasonHTTPLibrary, "aiohttp"},
	{"Go-http-client/1.1", "Go-http-client/1.1", ReasonHTTPLibrary, "go-http-client"},
	{"Go-http-client/2.0", "Go-http-client/2.0", ReasonHTTPLibrary, "go-http-client"},
	{"okhttp", "okhttp/4.12.0", ReasonHTTPLibrary, "okhttp"},
	{"Java", "Java/1.8.0_121", ReasonHTTPLibrary, "java"},
	{"libwww-perl", "libwww-perl/6.72", ReasonHTTPLibrary, "libwww-perl"},
	{"axios", "axios/1.6.8", ReasonHTTPLibrary, "axios"},
	{"node-fetch", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", ReasonHTTPLibrary, "node-fetch"},
	{"undici", "undici", ReasonHTTPLibrary, "node"},
	{"node", "node", ReasonHTTPLibrary, "node"},
	{"Apache-HttpClient", "Apache-HttpClient/4.5.14 (Java/17.0.9)", ReasonHTTPLibrary, "apache-httpclient"},
	{"PostmanRuntime", "PostmanRuntime/7.37.3", ReasonHTTPLibrary, "postman"},
	{"GuzzleHttp", "GuzzleHttp/7", ReasonHTTPLibrary, "guzzle"},
	{"library + generic bot", "python-requests/2.31.0 (compatible; MyBot/1.0)", ReasonCrawler | ReasonHTTPLibrary, "python-requests"},

	// Headless browsers.
	{"HeadlessChrome", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.6099.71 Safari/537.36", ReasonHeadless, "headlesschrome"},
	{"PhantomJS", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", ReasonHeadless, "phantomjs"},

	// Scanners.
	{"Office existence discovery", "Microsoft Office Existence Discovery", ReasonScanner, "ms-office-discovery"},
	{"Office protocol discovery", "Microsoft Office Protocol Discovery", ReasonScanner, "ms-office-discovery"},
	{"Google-Safety", "Google-Safety", ReasonScanner, "google-safety"},
	{"Kaspersky", "Kaspersky Lab CFR link resolver cfradmins@kaspersky.com", ReasonScanner, "kaspersky"},
	{"Foregenix generic scan", "Foregenix Web Scan 1.100000 (www.foregenix.com/scan)", ReasonScanner, ""},
	{"Nmap", "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)", ReasonScanner, "nmap"},
}

// humanUAs are real browser and in-app browser UAs that must stay human,
// including several that contain words a naive matcher would trip on.
var humanUAs = []struct{ name, ua string }{
	{"iPhone Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"},
	{"iPad Safari", "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1"},
	{"macOS Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"},
	{"Android Chrome", "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"},
	{"Android Chrome Pixel", "Mozilla/5.0 (Linux; Android 13; Pixel 6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/104.0.0.0 Mobile Safari/537.36"},
	{"Chrome iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"},
	{"Samsung Internet", "Mozilla/5.0 (Linux; Android 9; SAMSUNG SM-G960U) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/10.2 Chrome/71.0.3578.99 Mobile Safari/537.36"},
	{"Firefox Windows", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"},
	{"Firefox Android", "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"},
	{"Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/81.0.4044.113 Safari/537.36 Edg/81.0.416.62"},
	{"Edge iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 EdgiOS/44.10.19 Mobile/15E148 Safari/605.1.15"},
	{"Android WebView (Gmail and other in-app)", "Mozilla/5.0 (Linux; Android 13; SM-S901B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.163 Mobile Safari/537.36"},
	{"Google app iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) GSA/102.0.304944559 Mobile/15E148 Safari/604.1"},
	{"Google app Android", "Mozilla/5.0 (Linux; Android 6.0.1; SM-G532M Build/MMB29T; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/88.0.4324.181 Mobile Safari/537.36 GoogleApp/12.4.9.23.arm"},
	{"Instagram iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 123.1.0.26.115 (iPhone11,8; iOS 13_3; en_US; en-US; scale=2.00; 828x1792; 190542906)"},
	{"Instagram Android", "Mozilla/5.0 (Linux; Android 11; Pixel 2 Build/RP1A.201005.004.A1; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/91.0.4472.120 Mobile Safari/537.36 Instagram 194.0.0.36.172 Android (30/11; 420dpi; 1080x1878; Google/google; Pixel 2; walleye; walleye; en_US; 301484483)"},
	{"Facebook iOS", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone11,8;FBMD/iPhone;FBSN/iOS;FBSV/13.3.1;FBSS/2;FBID/phone;FBLC/en_US;FBOP/5;FBCR/]"},
	{"Facebook Android", "Mozilla/5.0 (Linux; Android 9; SM-G950U Build/PPR1.180610.011; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/80.0.3987.149 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/263.0.0.46.121;]"},
	{"Snapchat iOS in-app", "Mozilla/5.0 (iPhone; CPU iPhone OS 14_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.1 Mobile/15E148 Snapchat/11.36.0.36 (like Safari/604.1)"},
	{"Snapchat Android in-app", "Mozilla/5.0 (Linux; Android 10; SM-G973U Build/QP1A.190711.020; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/79.0.3945.136 Mobile Safari/537.36Snapchat10.74.6.0 (SM-G973U; Android 10#G973USQS2CSL1#29; gzip)"},
	{"Viber in-app", "Mozilla/5.0 (Linux; Android 7.1.2; G011A Build/N2G48H; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.158 Safari/537.36 Viber/11.9.5.8"},
	{"Viber desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_4) AppleWebKit/537.36 (KHTML, like Gecko) QtWebEngine/5.6.0 Chrome/45.0.2454.101 Safari/537.36 Viber"},
	{"LinkedIn in-app", "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [LinkedInApp]"},
	{"Pinterest in-app", "Mozilla/5.0 (Linux; Android 9; STF-L09 Build/HUAWEISTF-L09; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/79.0.3945.79 Mobile Safari/537.36 [Pinterest/Android]"},
	{"Twitter in-app", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/17D50 Twitter for iPhone/8.10"},
	{"WeChat", "Mozilla/5.0 (Linux; Android 7.0; FRD-AL00 Build/HUAWEIFRD-AL00; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/53.0.2785.49 Mobile MQQBrowser/6.2 TBS/043602 Safari/537.36 MicroMessenger/6.5.16.1120 NetType/WIFI Language/zh_CN"},
	{"Slack desktop", "Mozilla/5.0 (Windows NT 10.0.18362; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.4.2 Chrome/78.0.3904.130 Electron/7.2.1 Safari/537.36 WindowsStore/10.0.18362 Sonic Slack_SSB/4.4.2"},
	{"Discord desktop", "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) discord/0.0.306 Chrome/78.0.3904.130 Electron/7.1.11 Safari/537.36"},
	{"Outlook ms-office", "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"},
	{"Outlook desktop", "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.12026; Pro)"},
	{"DuckDuckGo browser", "Mozilla/5.0 (iPhone; CPU iPhone OS 16_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.4 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15"},
	{"Yandex Browser", "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/59.0.3071.125 YaBrowser/17.7.1.791 Yowser/2.5 Safari/537.36"},
	{"Baidu app", "Mozilla/5.0 (iPhone; CPU iPhone OS 13_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 SP-engine/2.16.0 main/1.0 baiduboxapp/11.20.0.17 (Baidu; P2 13.3.1) NABar/1.0"},
	{"Bing app", "Mozilla/5.0 (iPhone; CPU iPhone OS 12_3_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/605.1.15 BingWeb/6.37.2.0"},
	{"Cubot phone", "Mozilla/5.0 (Linux; Android 8.0.0; CUBOT_P20) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.110 Mobile Safari/537.36"},
	{"Cubot phone spaced", "Mozilla/5.0 (Linux; Android 6.0; CUBOT MAX Build/MRA58K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/51.0.2704.81 Mobile Safari/537.36"},
	{"Opera turbotabbee", "Opera/9.70 (Linux armv7l ; U; turbotabbee/TSV2.0/1.02Q; fr) Presto/2.2"},
	{"Huawei Browser", "Mozilla/5.0 (Linux; Android 10; MAR-LX3A; HMSCore 6.12.4.311; GMSCore 23.48.16) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.88 HuaweiBrowser/14.0.2.311 Mobile Safari/537.36"},
}

func get(ua string) Request { return Request{Method: []byte("GET"), UserAgent: []byte(ua)} }

func TestClassifyBots(t *testing.T) {
	for _, tc := range botUAs {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(get(tc.ua))
			want := Verdict{Reasons: tc.reasons, Agent: tc.agent}
			if got != want {
				t.Errorf("Classify(%q) = %q %+v, want %q %+v", tc.ua, got, got, want, want)
			}
		})
	}
}

func TestClassifyHumans(t *testing.T) {
	for _, tc := range humanUAs {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(get(tc.ua)); got.Bot() {
				t.Errorf("Classify(%q) = %q, want human", tc.ua, got)
			}
		})
	}
}

func TestClassifyRequestSignals(t *testing.T) {
	const safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
	const whatsapp = "WhatsApp/2.23.20.0 A"
	b := func(s string) []byte { return []byte(s) }
	tests := []struct {
		name string
		req  Request
		want Verdict
	}{
		{"plain GET", Request{Method: b("GET"), UserAgent: b(safari)}, Verdict{}},
		{"HEAD", Request{Method: b("HEAD"), UserAgent: b(safari)}, Verdict{Reasons: ReasonHead}},
		{"lowercase head is not HEAD", Request{Method: b("head"), UserAgent: b(safari)}, Verdict{}},
		{"Purpose prefetch", Request{Method: b("GET"), UserAgent: b(safari), Purpose: b("prefetch")}, Verdict{Reasons: ReasonPrefetch}},
		{"Purpose preview", Request{Method: b("GET"), UserAgent: b(safari), Purpose: b("preview")}, Verdict{Reasons: ReasonPrefetch}},
		{"Sec-Purpose prefetch", Request{Method: b("GET"), UserAgent: b(safari), SecPurpose: b("prefetch")}, Verdict{Reasons: ReasonPrefetch}},
		{"Sec-Purpose prerender", Request{Method: b("GET"), UserAgent: b(safari), SecPurpose: b("prefetch;prerender")}, Verdict{Reasons: ReasonPrefetch}},
		{"Sec-Purpose anonymous", Request{Method: b("GET"), UserAgent: b(safari), SecPurpose: b("prefetch;anonymous-client-ip")}, Verdict{Reasons: ReasonPrefetch}},
		{"X-Purpose preview", Request{Method: b("GET"), UserAgent: b(safari), XPurpose: b("preview")}, Verdict{Reasons: ReasonPrefetch}},
		{"X-Purpose upper", Request{Method: b("GET"), UserAgent: b(safari), XPurpose: b("PREVIEW")}, Verdict{Reasons: ReasonPrefetch}},
		{"X-Moz prefetch", Request{Method: b("GET"), UserAgent: b(safari), XMoz: b("prefetch")}, Verdict{Reasons: ReasonPrefetch}},
		{"unrelated purpose", Request{Method: b("GET"), UserAgent: b(safari), Purpose: b("navigate"), XMoz: b("pre")}, Verdict{}},
		{"missing UA", Request{Method: b("GET")}, Verdict{Reasons: ReasonMissingUA}},
		{"blank UA", Request{Method: b("GET"), UserAgent: b(" \t ")}, Verdict{Reasons: ReasonMissingUA}},
		{"HEAD + WhatsApp + prefetch",
			Request{Method: b("HEAD"), UserAgent: b(whatsapp), Purpose: b("prefetch")},
			Verdict{Reasons: ReasonPreview | ReasonHead | ReasonPrefetch, Agent: "whatsapp"}},
		{"HEAD + missing UA + Sec-Purpose",
			Request{Method: b("HEAD"), SecPurpose: b("prefetch")},
			Verdict{Reasons: ReasonHead | ReasonPrefetch | ReasonMissingUA}},
		{"HEAD + Office discovery",
			Request{Method: b("HEAD"), UserAgent: b("Microsoft Office Existence Discovery")},
			Verdict{Reasons: ReasonHead | ReasonScanner, Agent: "ms-office-discovery"}},
		{"preview and crawler identities both count",
			Request{Method: b("GET"), UserAgent: b("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) BingPreview/1.0b")},
			Verdict{Reasons: ReasonPreview | ReasonCrawler, Agent: "bingpreview"}},
		{"headless + library",
			Request{Method: b("GET"), UserAgent: b("HeadlessChrome/120.0 curl/8.4.0")},
			Verdict{Reasons: ReasonHTTPLibrary | ReasonHeadless, Agent: "curl"}},
		{"identity suppresses headless",
			Request{Method: b("GET"), UserAgent: b("Mozilla/5.0 HeadlessChrome/120.0 (compatible; Discordbot/2.0)")},
			Verdict{Reasons: ReasonPreview, Agent: "discord"}},
		{"WhatsApp token mid-UA is not the fetcher",
			Request{Method: b("GET"), UserAgent: b("Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile Safari/537.36 WhatsApp/2.23.20.0")},
			Verdict{}},
		{"okhttp mid-UA is not bare okhttp",
			Request{Method: b("GET"), UserAgent: b("MyShopApp/3.2 (Android 14) okhttp/4.12.0")},
			Verdict{}},
		{"exact match ignores surrounding blanks",
			Request{Method: b("GET"), UserAgent: b("  Viber ")},
			Verdict{Reasons: ReasonPreview, Agent: "viber"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.req); got != tc.want {
				t.Errorf("Classify = %q %+v, want %q %+v", got, got, tc.want, tc.want)
			}
		})
	}
}

// TestPatternsMatchThemselves checks every table entry is reachable through
// the filter: a UA consisting of the literal (padded, for anywhere patterns,
// to exercise both the 8-byte and the tail loop) must yield its reason.
func TestPatternsMatchThemselves(t *testing.T) {
	for pi, p := range patterns {
		uas := []string{p.lit, strings.ToUpper(p.lit)}
		if p.mode == anywhere {
			uas = append(uas, "x "+p.lit+" x", "0123456 "+strings.ToUpper(p.lit)+" ")
		}
		for _, ua := range uas {
			got := Classify(get(ua))
			if got.Reasons&p.reason == 0 {
				t.Errorf("pattern %d %q: Classify(%q) = %q, missing %s", pi, p.lit, ua, got, reasonNames[bitIndex(p.reason)])
			}
			if p.agent != "" && got.Agent == "" {
				t.Errorf("pattern %d %q: Classify(%q) has no agent", pi, p.lit, ua)
			}
		}
	}
}

func bitIndex(r Reason) int {
	for i := 0; i < reasonCount; i++ {
		if r == 1<<i {
			return i
		}
	}
	return -1
}

// TestLongUA checks the head/tail scan windows of over-long UAs.
func TestLongUA(t *testing.T) {
	pad := strings.Repeat("a", 3000)
	tests := []struct {
		ua   string
		want Reason
	}{
		{"Twitterbot/1.0 " + pad, ReasonPreview},
		{pad + " Twitterbot/1.0", ReasonPreview},
		{pad[:1000] + " Twitterbot/1.0 " + pad, 0}, // in the unscanned middle, by design
		{"WhatsApp/2.23 " + pad, ReasonPreview},
		{pad, 0},
	}
	for _, tc := range tests {
		if got := Classify(get(tc.ua)).Reasons; got != tc.want {
			t.Errorf("Classify(len %d) = %v, want %v", len(tc.ua), got, tc.want)
		}
	}
}

// naiveUA is the reference the filtered matcher must agree with: every
// pattern tried at every position, same scan windows, same tiering.
func naiveUA(ua []byte) (Reason, string) {
	a := acc{idRank: ^uint16(0), secRank: ^uint16(0)}
	t := trimBlank(ua)
	for pi, p := range patterns {
		switch p.mode {
		case prefix:
			if hasPrefixFold(ua, p.lit) {
				a.add(pi)
			}
		case exact:
			if len(t) == len(p.lit) && hasPrefixFold(t, p.lit) {
				a.add(pi)
			}
		}
	}
	windows := [][]byte{ua}
	if len(ua) > maxScan {
		windows = [][]byte{ua[:headScan], ua[len(ua)-tailScan:]}
	}
	for _, w := range windows {
		for pi, p := range patterns {
			if p.mode != anywhere {
				continue
			}
			for s := 0; s+len(p.lit) <= len(w); s++ {
				if hasPrefixFold(w[s:], p.lit) && (p.check == nil || p.check(w, s, s+len(p.lit))) {
					a.add(pi)
				}
			}
		}
	}
	return a.result()
}

func TestMatcherAgreesWithNaive(t *testing.T) {
	var uas []string
	for _, tc := range botUAs {
		uas = append(uas, tc.ua)
	}
	for _, tc := range humanUAs {
		uas = append(uas, tc.ua)
	}
	for _, ua := range uas {
		gr, ga := classifyUA([]byte(ua))
		nr, na := naiveUA([]byte(ua))
		if gr != nr || ga != na {
			t.Errorf("%q: matcher %v/%q, naive %v/%q", ua, gr, ga, nr, na)
		}
	}
}

func TestClassifyZeroAllocs(t *testing.T) {
	reqs := []Request{
		get(humanUAs[0].ua),
		get(botUAs[0].ua),
		{Method: []byte("HEAD"), UserAgent: []byte("WhatsApp/2.23.20.0 A"), Purpose: []byte("prefetch"), SecPurpose: []byte("prefetch;prerender")},
		{Method: []byte("GET")},
		get(strings.Repeat("Mozilla/5.0 bot ", 200)),
	}
	for i, r := range reqs {
		if n := testing.AllocsPerRun(200, func() { _ = Classify(r) }); n != 0 {
			t.Errorf("request %d: %v allocs per Classify, want 0", i, n)
		}
	}
}

func TestMatcherTables(t *testing.T) {
	// Every agent must belong to exactly one reason (enforced at init) and
	// be a valid persisted name.
	for name, ai := range m.agents {
		if !validAgent(name) || ai.name != name {
			t.Errorf("agent %q invalid", name)
		}
	}
	// The filter is meant to be sparse; a crowded filter means slow humans.
	set := 0
	for _, b := range filter {
		if b != 0 {
			set++
		}
	}
	if set > len(filter)/50 {
		t.Errorf("filter %d/%d entries set: too dense", set, len(filter))
	}
}
