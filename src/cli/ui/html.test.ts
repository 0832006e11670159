import { escapeHtml, html } from './html.js';

describe('html', () => {
  test('escapes every interpolated string, including quotes and backticks', () => {
    const label = `<img src=x onerror="alert(1)">'\`&`;
    expect(html`<td title="${label}">${label}</td>`.text).toBe(
      '<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&#96;&amp;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&#39;&#96;&amp;</td>',
    );
    expect(escapeHtml('</script><script>')).toBe('&lt;/script&gt;&lt;script&gt;');
  });

  test('nests fragments without escaping them twice; arrays join; undefined, null and false vanish', () => {
    const items = ['a<b', 'c'].map((x) => html`<li>${x}</li>`);
    expect(html`<ul>${items}</ul>${undefined}${null}${false}${0}`.text).toBe('<ul><li>a&lt;b</li><li>c</li></ul>0');
  });
});
