'use strict';

// CG renders the admin API's campaign report (GET /api/v1/reports/campaigns) as HTML.
// Its functions are pure, so the server's tests run them on real reports; the page's
// wiring at the end is the only part that touches the browser.
var CG = (function () {
  var entities = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

  // esc makes text safe inside HTML: campaign, link and currency names come from
  // whoever created the links.
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return entities[c]; });
  }

  // unknown marks a figure whose input is unknown: empty, never zero.
  var unknown = '<span class="unknown" title="unknown">–</span>';

  function grouped(n) {
    var neg = n < 0;
    var s = String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return neg ? '-' + s : s;
  }

  function count(n) {
    return n === null || n === undefined ? unknown : grouped(n);
  }

  function signed(n) {
    if (n === null || n === undefined) {
      return unknown;
    }
    return (n > 0 ? '+' : '') + grouped(n);
  }

  function pct(v) {
    return v === null || v === undefined ? unknown : (v * 100).toFixed(1) + '%';
  }

  function ratio(v) {
    return v === null || v === undefined ? unknown : String(v);
  }

  // amount writes a sum with its currency, two decimals, or four for figures that are
  // often below a cent (revenue per message).
  function amount(v, currency, decimals) {
    return esc(v.toFixed(decimals) + (currency ? ' ' + currency : ''));
  }

  // sorted lists a map's entries in key order as each makes them, joined by sep, or
  // unknown when none is left.
  function sorted(m, sep, each) {
    var parts = [];
    Object.keys(m || {}).sort().forEach(function (k) {
      var s = each(k, m[k]);
      if (s) {
        parts.push(s);
      }
    });
    return parts.length ? parts.join(sep) : unknown;
  }

  function money(m, decimals) {
    return sorted(m, '<br>', function (c, v) { return amount(v, c, decimals || 2); });
  }

  function perType(m) {
    return sorted(m, '<br>', function (t, n) { return n ? esc(t) + ' ' + grouped(n) : ''; });
  }

  // seconds writes a time to conversion in the largest unit that keeps it readable, as
  // the CLI's table does.
  function seconds(s) {
    if (s === null || s === undefined) {
      return unknown;
    }
    if (s < 120) {
      return s + 's';
    }
    if (s < 2 * 3600) {
      return Math.floor(s / 60) + 'm';
    }
    if (s < 2 * 86400) {
      return (s / 3600).toFixed(1) + 'h';
    }
    return (s / 86400).toFixed(1) + 'd';
  }

  // change writes a figure's change against the previous period, when it has one.
  function change(row, name) {
    var v = row.change ? row.change[name] : null;
    if (v === null || v === undefined) {
      return '';
    }
    var cls = v > 0 ? 'up' : v < 0 ? 'down' : 'flat';
    return ' <small class="' + cls + '">' + (v > 0 ? '+' : '') + (v * 100).toFixed(1) + '%</small>';
  }

  // keyedChange lists the changes of a per-currency or per-type figure.
  function keyedChange(row, name, m) {
    var parts = [];
    Object.keys(m || {}).sort().forEach(function (k) {
      var c = change(row, name + '[' + k + ']');
      if (c) {
        parts.push(esc(k) + c);
      }
    });
    return parts.length ? '<div class="changes">' + parts.join(' ') + '</div>' : '';
  }

  var columns = [
    ['Clicks', function (r) { return count(r.human_clicks) + change(r, 'human_clicks'); }],
    ['Bots', function (r) { return count(r.bot_clicks); }],
    ['Visitors', function (r) { return count(r.unique_visitors) + change(r, 'unique_visitors'); }],
    ['Conversions', function (r) { return count(r.conversions_total) + change(r, 'conversions_total'); }],
    ['By type', function (r) { return perType(r.conversions); }],
    ['Refunded or rejected', function (r) { return perType(r.refunded_or_rejected); }],
    ['Conv. rate', function (r) { return pct(r.conversion_rate) + change(r, 'conversion_rate'); }],
    ['Per visitor', function (r) { return pct(r.conversion_rate_per_visitor); }],
    ['Revenue', function (r) { return money(r.revenue) + keyedChange(r, 'revenue', r.revenue); }],
    ['First click', function (r) { return money(r.first_click_revenue); }],
    ['Linear', function (r) { return money(r.linear_revenue); }],
    ['Rev./message', function (r) { return money(r.revenue_per_message, 4); }],
    ['Cost', function (r) { return r.cost === null || r.cost === undefined ? unknown : amount(r.cost, r.cost_currency, 2); }],
    ['Cost/conv.', function (r) { return r.cost_per_conversion === null || r.cost_per_conversion === undefined ? unknown : amount(r.cost_per_conversion, r.cost_currency, 2); }],
    ['Time to conv. (median)', function (r) { return seconds(r.median_seconds_to_convert); }],
    ['p90', function (r) { return seconds(r.p90_seconds_to_convert); }],
    ['Sent', function (r) { return count(r.messages_sent); }],
    ['Platform', function (r) { return count(r.platform_conversions); }],
    ['vs platform', function (r) { return signed(r.discrepancy); }],
    ['Ratio', function (r) { return ratio(r.discrepancy_ratio); }]
  ];

  // render writes a whole report: its period, then a row per group.
  function render(rep) {
    var out = '<p class="period">' + esc(rep.from) + ' to ' + esc(rep.to) + ', by ' + esc(rep.group_by);
    if (rep.previous_from) {
      out += '; changes against ' + esc(rep.previous_from) + ' to ' + esc(rep.previous_to);
    }
    out += '</p>';
    var rows = rep.rows || [];
    if (!rows.length) {
      return out + '<p class="empty">No clicks or conversions in this period.</p>';
    }
    out += '<table><thead><tr><th>' + esc(rep.group_by) + '</th>';
    columns.forEach(function (c) { out += '<th>' + esc(c[0]) + '</th>'; });
    out += '</tr></thead><tbody>';
    rows.forEach(function (r) {
      var cls = r.group === '(unattributed)' ? ' class="unattributed"' : '';
      out += '<tr' + cls + '><th scope="row">' + esc(r.group) + '</th>';
      columns.forEach(function (c) { out += '<td>' + c[1](r) + '</td>'; });
      out += '</tr>';
    });
    return out + '</tbody></table>';
  }

  // query is the API path of a report.
  function query(from, to, groupBy, format) {
    var q = 'from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to) + '&group_by=' + encodeURIComponent(groupBy);
    if (format) {
      q += '&format=' + encodeURIComponent(format);
    }
    return '/api/v1/reports/campaigns?' + q;
  }

  // lastWeek is the report's default period, as the API's: the seven days to today, UTC.
  function lastWeek(now) {
    var day = function (t) { return new Date(t).toISOString().slice(0, 10); };
    return { from: day(now - 6 * 86400000), to: day(now) };
  }

  return { esc: esc, render: render, query: query, lastWeek: lastWeek, seconds: seconds };
}());

// The page: the form, the token kept for this tab only, and the API calls.
if (typeof document !== 'undefined') {
  document.addEventListener('DOMContentLoaded', function () {
    var $ = function (id) { return document.getElementById(id); };
    var week = CG.lastWeek(Date.now());
    $('from').value = week.from;
    $('to').value = week.to;
    $('token').value = sessionStorage.getItem('clickgate_admin_token') || '';

    function say(text, bad) {
      $('status').textContent = text;
      $('status').className = bad ? 'bad' : '';
    }

    function call(format) {
      var token = $('token').value.trim();
      if (!token) {
        say('Enter the admin token (CLICKGATE_ADMIN_TOKEN).', true);
        return Promise.reject(new Error('no token'));
      }
      sessionStorage.setItem('clickgate_admin_token', token);
      say('Loading…');
      return fetch(CG.query($('from').value, $('to').value, $('group_by').value, format), {
        headers: { Authorization: 'Bearer ' + token },
        cache: 'no-store'
      }).then(function (res) {
        if (res.ok) {
          say('');
          return res;
        }
        if (res.status === 401) {
          sessionStorage.removeItem('clickgate_admin_token');
        }
        return res.json().then(function (body) {
          throw new Error(body && body.error ? body.error.message : res.status + ' ' + res.statusText);
        }, function () {
          throw new Error(res.status + ' ' + res.statusText);
        });
      });
    }

    function failed(err) {
      if (err.message !== 'no token') {
        say(err.message, true);
      }
    }

    $('query').addEventListener('submit', function (ev) {
      ev.preventDefault();
      call('').then(function (res) { return res.json(); }).then(function (rep) {
        $('report').innerHTML = CG.render(rep);
      }).catch(failed);
    });

    $('csv').addEventListener('click', function () {
      call('csv').then(function (res) { return res.blob(); }).then(function (blob) {
        var a = document.createElement('a');
        a.href = URL.createObjectURL(blob);
        a.download = 'clickgate-report-' + $('group_by').value + '-' + $('from').value + '-' + $('to').value + '.csv';
        document.body.appendChild(a);
        a.click();
        a.remove();
        URL.revokeObjectURL(a.href);
      }).catch(failed);
    });

    if ($('token').value) {
      $('query').requestSubmit();
    }
  });
}
